"""A character-level language model of discrete bipartite flows (Tran et al. 2019, sections 4.4,
4.5), shared by ``charlm`` (its Table 3 row) and ``charflows`` (Figure 3).

    p(y) = p_base(f_1^-1(... f_L^-1(y))),   y : (D,) tokens in [0, K),

a factorized categorical base over the D positions and L bipartite flows whose kept positions
alternate even, odd, ..., each with a non-causal network: an MLP on the whole (masked) row, of
``hidden`` units and ``layers`` hidden layers (the paper's per-flow Transformer or LSTM costs ten
times as much per step on a CPU at these sizes and did no better in a first trial). ``scale``
adds sigma (location-scale) to location-only flows. Every sequence is one row of length D
(``data.fixed_length``: sentences padded with an end token, or chunks of a stream), so the
likelihood is exact and normalized over the K^D rows.

Training: Adam at ``LR`` decayed linearly to 5% of it (the straight-through gradient is noisy; the
last steps settle), gradient norm clipped at ``CLIP``, on the mean NLL of the rows, with
the flows' straight-through estimator of ``settings.spread``, from a random start (a flow started
at the identity, ``discrete.identity_start``, with its base at the data's marginals sits in a
local optimum of the straight-through gradient and does not move).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.data import make_hmm
from mini_flows.discrete.diagnostics import diagnostics_report
from mini_flows.discrete.model import DiscreteFlowModel, build_model
from mini_flows.experiments.evaluation import log_probs
from mini_flows.experiments.memory import bipartite_footprint
from mini_flows.experiments.settings import Settings
from mini_flows.nn.tree import Tree
from mini_flows.optim import Adam
from mini_flows.train import fit, linear_decay

LR, CLIP, BATCH = 1e-2, 5.0, 32
SCORE_ROWS = 256
"""Rows scored at once (``bits_per_char``)."""


def bipartite_lm(vocab_size: int, length: int, num_flows: int, scale: bool, hidden: int, layers: int,
                 spread: float | None) -> DiscreteFlowModel:
    """A factorized base over ``length`` positions of ``vocab_size`` tokens and ``num_flows``
    bipartite flows (kept positions even, odd, ...), each with an ``MLPNet`` of ``hidden`` units
    and ``layers`` hidden layers; ``scale``: location-scale flows, else location-only; ``spread``:
    the straight-through estimator's (``build_model``'s, which builds it, so that its ``config``
    rebuilds it)."""
    return build_model("bipartite", vocab_size, length, num_flows, scale, hidden, network="mlp", spread=spread,
                       layers=layers)


def train_bipartite(label: str, model: DiscreteFlowModel, rows: Any, steps: int,
                    settings: Settings) -> tuple[Tree, Any]:
    """``steps`` Adam steps on batches of ``BATCH`` rows (N, D) drawn without replacement within
    each epoch (reshuffled from the seed); (trained params, ``diagnostics_report`` of the flows)."""
    n = rows.shape[0]
    data = B.asarray(rows)
    per_epoch = max(1, n // BATCH)
    orders: dict[int, Any] = {}

    def batch(step: int) -> Any:
        epoch, i = divmod(step, per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = B.asarray(B.host_rng(settings.seed + epoch).permutation(n))
        return data[orders[epoch][i * BATCH:(i + 1) * BATCH]]

    params, history = fit(model.loss_and_grads, model.init(B.host_rng(settings.seed)), batch, steps,
                          Adam(lr=LR, clip_norm=CLIP), linear_decay(LR, steps),
                          reporter=settings.progress(label, steps, unit="nats/seq"))
    return params, diagnostics_report(history)


def bits_per_char(model: DiscreteFlowModel, params: Tree, rows: Any, characters: int) -> float:
    """-sum log2 p(rows) / ``characters``: rows (N, D) scored in batches of ``SCORE_ROWS``, divided
    by the characters they hold (the sentences' for padded rows, N D for chunks)."""
    nats = -float(B.xp().sum(log_probs(partial(model.log_prob, params), B.asarray(rows), chunk=SCORE_ROWS)))
    return nats / math.log(2) / characters


def sample_rows(model: DiscreteFlowModel, params: Tree, n: int, seed: int) -> Any:
    """n generated rows (n, D) as a host array: one pass through the base and the flows."""
    return B.to_numpy(model.sample(params, n, seed))


def generation_seconds(generate: Callable[[int], Any], repeats: int) -> float:
    """Mean wall seconds of ``generate(seed)`` over ``repeats`` seeds after one untimed warm-up."""
    generate(0)
    return sum(B.wall_seconds(lambda: generate(s)) for s in range(1, repeats + 1)) / repeats


def hmm_source(seed: int) -> Any:
    """The synthetic character source of ``charlm`` and ``charflows``: an HMM with 4 states over
    8 characters, T uniform on [4, 12] (``data.make_hmm``), with an exact likelihood."""
    return make_hmm(seed, n_states=4, vocab_size=8, min_length=4, max_length=12, emissions_per_state=3,
                    concentration=0.3)


def bipartite_needs(label: str, vocab_size: int, length: int, sizes: dict[str, Any], train_rows: int,
                    test_rows: int, sampled_rows: int) -> list[tuple[str, int]]:
    """The bytes (``memory``) of training the ``bipartite_lm`` of ``sizes`` (num_flows, scale,
    hidden, layers) over rows of ``length`` tokens of ``vocab_size`` on batches of
    min(``BATCH``, ``train_rows``) rows, of scoring ``test_rows`` and of sampling ``sampled_rows``
    at once, in float64."""
    footprint = bipartite_footprint(vocab_size, length, **sizes)
    return [(f"training {label}", footprint.step_bytes(min(BATCH, train_rows), 8, True)),
            (f"scoring {label}", footprint.step_bytes(min(SCORE_ROWS, test_rows), 8, False)),
            (f"sampling {label}", footprint.step_bytes(sampled_rows, 8, False))]
