"""A character-level language model of discrete bipartite flows (Tran et al. 2019, sections 4.4,
4.5), shared by ``charlm`` (its Table 3 row) and ``charflows`` (Figure 3).

    p(y) = p_base(f_1^-1(... f_L^-1(y))),   y : (D,) tokens in [0, K),

a factorized categorical base over the D positions and L bipartite flows whose kept positions
alternate even, odd, ..., each with a non-causal network: by default an MLP on the whole (masked)
row, of ``hidden`` units and ``layers`` hidden layers; ``network="lstm"`` is the paper's Penn
Treebank network instead (``BiLSTMNet``: an embedding and a bidirectional LSTM over the masked
row, per flow), several times slower per step on a CPU. ``scale`` adds sigma (location-scale)
to location-only flows. Every sequence is one row of length D
(``data.fixed_length``: sentences padded with an end token, or chunks of a stream), so the
likelihood is exact and normalized over the K^D rows.

Training: Adam at ``LR`` decayed linearly to 5% of it (the straight-through gradient is noisy; the
last steps settle), gradient norm clipped at ``CLIP``, on the mean NLL of the rows, with the
flows' straight-through estimator of ``settings.spread``, keeping the parameters of the best mean
NLL on the validation rows (``train.Validation``, ``VALIDATIONS`` scores and the start's). Base
first: the factorized base trains alone, then each flow model trains as many steps again from
that base with its flows at the identity (``discrete.on_trained_base``), base and flows together
(the batches continuing where the base's stopped), so it cannot end worse than the base on the
validation rows; a tie with the base is the worst case. The second stage trains the base further
too: "base only, 2 stages" in ``charflows`` is the base trained alone for both stages, to tell
the flows' gain from the base's. (Over a held base the flows barely move: on an English text at
150 steps, no gain held against 0.7 bits together.)
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.data import make_hmm
from mini_flows.discrete.diagnostics import diagnostics_report
from mini_flows.discrete.model import DiscreteFlowModel, build_model, on_trained_base
from mini_flows.experiments.evaluation import log_probs, mean_nll
from mini_flows.experiments.memory import bipartite_footprint
from mini_flows.experiments.settings import Settings
from mini_flows.nn.tree import Tree, first_leaf
from mini_flows.optim import Adam
from mini_flows.train import Validation, fit, linear_decay

LR, CLIP, BATCH = 1e-2, 5.0, 32
SCORE_ROWS = 256
"""Rows scored at once (``bits_per_char``)."""
VALIDATIONS = 20  # validation scores per training stage, besides the start's


def bipartite_lm(vocab_size: int, length: int, num_flows: int, scale: bool, hidden: int, layers: int,
                 spread: float | None, network: str = "mlp") -> DiscreteFlowModel:
    """A factorized base over ``length`` positions of ``vocab_size`` tokens and ``num_flows``
    bipartite flows (kept positions even, odd, ...), each with an ``MLPNet`` of ``hidden`` units
    and ``layers`` hidden layers, or with ``network="lstm"`` a ``BiLSTMNet`` (embedding and LSTM
    width ``hidden``, ``layers`` layers); ``scale``: location-scale flows, else location-only;
    ``spread``: the straight-through estimator's (``build_model``'s, which builds it, so that its
    ``config`` rebuilds it)."""
    return build_model("bipartite", vocab_size, length, num_flows, scale, hidden, network=network, spread=spread,
                       layers=layers)


def train_bipartite(label: str, model: DiscreteFlowModel, rows: Any, valid: Any, steps: int, settings: Settings,
                    start: Tree | None = None, offset: int = 0) -> tuple[Tree, dict[str, list]]:
    """``steps`` Adam steps from ``start`` (None: ``model.init``) on batches of ``BATCH`` rows
    (N, D) drawn without replacement within each epoch (reshuffled from the seed), steps
    ``offset`` .. ``offset + steps - 1`` of that stream, keeping the parameters of the best mean
    NLL on the ``valid`` rows; (those params, ``fit``'s history)."""
    n = rows.shape[0]
    data, valid = B.asarray(rows), B.asarray(valid)
    per_epoch = max(1, n // BATCH)
    orders: dict[int, Any] = {}

    def batch(step: int) -> Any:
        epoch, i = divmod(offset + step, per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = B.asarray(B.host_rng(settings.seed + epoch).permutation(n))
        return data[orders[epoch][i * BATCH:(i + 1) * BATCH]]

    start = model.init(B.host_rng(settings.seed)) if start is None else start
    score = Validation(lambda p: mean_nll(partial(model.log_prob, p), valid, chunk=256),
                       max(1, steps // VALIDATIONS))
    params, history = fit(model.loss_and_grads, start, batch, steps, Adam(lr=LR, clip_norm=CLIP),
                          linear_decay(LR, steps), reporter=settings.progress(label, steps, unit="nats/seq"),
                          validate=score)
    return params, history


def base_first(label: str, model: DiscreteFlowModel, base: Tree, rows: Any, valid: Any, steps: int,
               settings: Settings) -> tuple[Tree, dict[str, list]]:
    """The flow model's second stage: ``steps`` steps from ``base`` (a trained factorized base's
    tree, ``params["base"]``, after ``steps`` steps of its own) with every flow at the identity,
    the batches continuing where the base's stopped (``train_bipartite``)."""
    start = on_trained_base(model, base, B.host_rng(settings.seed), first_leaf(base).dtype)
    return train_bipartite(label, model, rows, valid, steps, settings, start=start, offset=steps)


def summary(history: dict[str, list]) -> dict[str, Any]:
    """What the tables keep of a training history: the flows' ``diagnostics_report`` (none for a
    base alone), the step kept by validation, and the median seconds of a training step (validation
    excluded)."""
    seconds = history["seconds"]
    steps = sorted(b - a for a, b in zip([0.0, *seconds], seconds))
    diagnostics = diagnostics_report(history)
    return {**({"diagnostics": diagnostics} if diagnostics["final"] else {}), "best_step": history["best_step"][0],
            "step_seconds": steps[len(steps) // 2]}


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
