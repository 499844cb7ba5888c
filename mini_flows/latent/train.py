"""Training and evaluation of the latent flow model (section 5 and supplement D).

Training maximises the ELBO estimated with S samples (paper: 10) with KL annealing (the weight
of the KL term stays near 0 for E0 steps, then rises linearly to 1 over E1 steps; the paper uses
4 and 10 epochs: pass epochs times batches per epoch), Adam at lr 1e-3 with the gradient's global
norm clipped at 0.25, and dropout on the prior's time LSTM (``dropout.py``). Every gradient comes
from the hand-written backward passes (``LatentFlowModel.elbo_and_grads``).

Evaluation reports the importance-sampled NLL (paper: 50 samples), the reconstruction and KL
parts of the ELBO, and the length term -log p(T), each per token in the model's unit (bits per
character or nats per time step).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Iterator

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.latent.dropout import check_dropout_rate, dropout_mask
from mini_flows.latent.model import LatentFlowModel, log_mean_exp
from mini_flows.nn.tree import Tree
from mini_flows.optim import Adam
from mini_flows.process import one_blas_thread
from mini_flows.train import Progress, epochs, fit

KL_MIN = 1e-5


def kl_weight(step: int, schedule: tuple[int, int], minimum: float = KL_MIN) -> float:
    """The KL weight at ``step`` (0-based) for schedule (E0, E1) in steps:

        w = minimum                                             for step < E0
        w = minimum + (1 - minimum) min(1, (step - E0 + 1) / E1)  after (1 at once when E1 = 0).
    """
    E0, E1 = schedule
    if step < E0:
        return minimum
    if E1 == 0:
        return 1.0
    return minimum + (1.0 - minimum) * min(1.0, (step - E0 + 1) / E1)


def _check_schedule(schedule: Any) -> tuple[int, int]:
    ok = isinstance(schedule, (tuple, list)) and len(schedule) == 2
    ok = ok and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in schedule)
    if not ok:
        raise ValueError(f"kl_schedule must be two integers (E0, E1) >= 0, in steps; got {schedule!r}")
    return int(schedule[0]), int(schedule[1])


def _batch_source(data_batches: Any) -> Iterator[tuple[Any, Any]]:
    """Batches forever from a list or tuple (cycled) or a callable epoch -> batches; a one-shot
    iterable as it is."""
    if callable(data_batches):
        return epochs(data_batches)
    if isinstance(data_batches, (list, tuple)):
        return epochs(lambda epoch: data_batches)
    return iter(data_batches)


def train(model: LatentFlowModel, params: Tree, data_batches: Iterable[tuple[Any, Any]] | Callable[[int], Iterable],
          steps: int, seed: int | None, lr: float = 1e-3, clip: float = 0.25, samples: int = 10,
          kl_schedule: tuple[int, int] = (0, 0), dropout: float = 0.0,
          reporter: Progress | None = None) -> tuple[Tree, dict[str, list]]:
    """Train for ``steps`` Adam steps on the annealed ELBO with ``train.fit``; returns (new params,
    history).

    Parameters
    ----------
    data_batches : (x, lengths) batches (host or backend arrays, as ``LatentFlowModel`` takes them):
        a list cycled in order, a callable epoch -> iterable of batches (e.g. a reshuffling loader),
        or a one-shot iterable that must hold ``steps`` batches.
    seed : seeds the one generator (``B.rng``) that draws the noise and the dropout masks.
    samples : S, the Monte Carlo samples per sequence (paper: 10).
    kl_schedule : (E0, E1) in steps; see ``kl_weight``. (0, 0): weight 1 throughout.
    dropout : p for the prior's time LSTM (AF-in-time priors only; 0 switches it off).
    reporter : a ``train.Progress`` (its lines show rec, kl and the KL weight), or None.

    The input params are not modified. history maps "step", "loss" (the training loss, nats per
    token), "rec" and "kl" (nats per token, rec = mean log p(x | z)), "kl_weight", "grad_norm"
    (before clipping) and "seconds" (since the start) to lists with one entry per step.
    """
    check_positive_int("steps", steps)
    check_positive_int("samples", samples)
    schedule = _check_schedule(kl_schedule)
    if dropout:
        check_dropout_rate(dropout)
        model.prior.check_dropout()
    rng = B.rng(seed)
    dtype = B.value(params["embed"]["E"]).dtype
    data = _batch_source(data_batches)

    def batch_at(step: int) -> tuple[Array, Array, Array, float, Array | None]:
        """(x, lengths, noise (S, batch, T, H), KL weight, dropout mask or None) for ``step``."""
        try:
            x, lengths = next(data)
        except StopIteration:
            raise ValueError("data_batches ran out; pass a list of batches or a callable epoch -> batches") from None
        x, lengths = B.asarray(x), B.asarray(lengths)
        batch, T = x.shape[:2]
        noise = rng.standard_normal((samples, batch, T, model.H), dtype=dtype)
        mask = dropout_mask(rng, dropout, (samples * batch, T, model.prior.lstm_size), dtype) if dropout else None
        return x, lengths, noise, kl_weight(step, schedule), mask

    def loss_and_grads(params: Tree, batch: tuple) -> tuple[float, Tree, dict[str, float]]:
        """-(rec - w kl) per token, its gradient, and rec, kl and w for the history."""
        x, lengths, noise, w, mask = batch
        rec, kl, grads = model.elbo_and_grads(params, x, lengths, noise, w, mask)
        tokens = float(lengths.sum())
        rec_t, kl_t = float(rec.sum()) / tokens, float(kl.sum()) / tokens
        return -(rec_t - w * kl_t), grads, {"rec": rec_t, "kl": kl_t, "kl_weight": w}

    return fit(loss_and_grads, params, batch_at, steps, Adam(lr=lr, clip_norm=clip), reporter=reporter)


@one_blas_thread()
def evaluate(model: LatentFlowModel, params: Tree, data_batches: Iterable[tuple[Any, Any]], samples: int = 50,
             seed: int | None = 0, chunk: int = 10) -> dict[str, Any]:
    """Importance-sampled NLL and the ELBO's parts over one pass of ``data_batches``.

    Draws ``samples`` noise samples per sequence, ``chunk`` at a time (memory), from ``B.rng(seed)``.
    Returns, per token in ``model.unit`` (bits per character or nats per time step):
    "nll" = -sum [log p(x | T) + log p(T)] / tokens (the importance-sampled estimate),
    "nll_given_length" (without log p(T)), "length_nll" (-log p(T) alone), "rec" (-E_q log p(x | z),
    the reconstruction), "kl" and "elbo_nll" = rec + kl >= nll_given_length; plus "unit",
    "tokens" and "sequences". BLAS runs on one thread meanwhile, as in ``train.fit``.
    """
    check_positive_int("samples", samples)
    check_positive_int("chunk", chunk)
    rng = B.rng(seed)
    dtype = B.value(params["embed"]["E"]).dtype
    totals = {"ll": 0.0, "length": 0.0, "rec": 0.0, "kl": 0.0}
    tokens = sequences = 0
    for x, lengths in data_batches:
        x, lengths = B.asarray(x), B.asarray(lengths)
        batch, T = x.shape[:2]
        recs, kls = [], []
        for start in range(0, samples, chunk):
            noise = rng.standard_normal((min(chunk, samples - start), batch, T, model.H), dtype=dtype)
            rec, kl = model.sample_terms(params, x, lengths, noise)
            recs.append(rec)
            kls.append(kl)
        rec, kl = B.xp().concatenate(recs), B.xp().concatenate(kls)
        totals["ll"] += float(log_mean_exp(rec - kl, axis=0).sum())
        totals["length"] += float(model.length_prior.log_prob(lengths).sum())
        totals["rec"] += float(rec.mean(axis=0).sum())
        totals["kl"] += float(kl.mean(axis=0).sum())
        tokens += int(lengths.sum())
        sequences += batch
    if tokens == 0:
        raise ValueError("data_batches yielded no batch to evaluate")
    scale = 1.0 / tokens / (math.log(2) if model.output == "categorical" else 1.0)
    result = {"nll_given_length": -totals["ll"] * scale, "length_nll": -totals["length"] * scale,
              "rec": -totals["rec"] * scale, "kl": totals["kl"] * scale}
    result["nll"] = result["nll_given_length"] + result["length_nll"]
    result["elbo_nll"] = result["rec"] + result["kl"]
    return {**result, "unit": model.unit, "tokens": tokens, "sequences": sequences}
