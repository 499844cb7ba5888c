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
import time
from typing import Any, Callable, Iterable, Iterator

from mini_flows import backend as B
from mini_flows.checks import check_positive_int
from mini_flows.latent.dropout import check_dropout_prior, dropout_mask
from mini_flows.latent.model import LatentFlowModel, log_mean_exp
from mini_flows.nn.tree import Tree, tree_map
from mini_flows.optim import Adam, check_loss, divergence_guard

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


def _endless(data_batches: Any) -> Iterator[tuple[Any, Any]]:
    """Batches forever: a callable is called with the epoch number for each new pass, a list or
    tuple is cycled; a one-shot iterator is read once (ValueError when it runs out)."""
    epoch = 0
    while True:
        if callable(data_batches):
            source = data_batches(epoch)
        elif isinstance(data_batches, (list, tuple)):
            source = data_batches
        elif epoch == 0:
            source = data_batches
        else:
            raise ValueError("data_batches ran out; pass a list of batches or a callable epoch -> batches")
        empty = True
        for batch in source:
            empty = False
            yield batch
        if empty:
            raise ValueError("data_batches yielded no batch")
        epoch += 1


def print_progress(info: dict[str, Any]) -> None:
    """One line per report: step, loss, KL weight, time elapsed and left (seconds)."""
    print(f"step {info['step']:>6}/{info['steps']}  loss {info['loss']:.4f} nats/token  "
          f"rec {info['rec']:.4f}  kl {info['kl']:.4f}  kl weight {info['kl_weight']:.3g}  "
          f"{info['elapsed']:.0f}s elapsed, {info['left']:.0f}s left", flush=True)


def train(model: LatentFlowModel, params: Tree, data_batches: Iterable[tuple[Any, Any]] | Callable[[int], Iterable],
          steps: int, seed: int | None, lr: float = 1e-3, clip: float = 0.25, samples: int = 10,
          kl_schedule: tuple[int, int] = (0, 0), dropout: float = 0.0,
          progress: Callable[[dict[str, Any]], None] | None = None,
          log_every: int | None = None) -> tuple[Tree, dict[str, list]]:
    """Train for ``steps`` Adam steps on the annealed ELBO; returns (new params, history).

    Parameters
    ----------
    data_batches : (x, lengths) batches (host or backend arrays, as ``LatentFlowModel`` takes them):
        a list cycled in order, a callable epoch -> iterable of batches (e.g. a reshuffling loader),
        or a one-shot iterable that must hold ``steps`` batches.
    seed : seeds the one generator (``B.rng``) that draws the noise and the dropout masks.
    samples : S, the Monte Carlo samples per sequence (paper: 10).
    kl_schedule : (E0, E1) in steps; see ``kl_weight``. (0, 0): weight 1 throughout.
    dropout : p for the prior's time LSTM (AF-in-time priors only; 0 switches it off).
    progress : called every ``log_every`` steps (default: 20 reports) and at the end with a dict
        (step, steps, loss, rec, kl, kl_weight, elapsed, left); ``print_progress`` prints it.

    The input params are not modified. history maps "step", "loss" (the training loss, nats per
    token), "rec" and "kl" (nats per token, rec = mean log p(x | z)), "kl_weight", "grad_norm"
    (before clipping) and "seconds" (since the start) to lists with one entry per step.
    """
    check_positive_int("steps", steps)
    check_positive_int("samples", samples)
    schedule = _check_schedule(kl_schedule)
    if dropout:
        dropout_mask(B.rng(0), dropout, (1,))  # validates p before any work
        check_dropout_prior(model.prior)
    log_every = log_every or max(1, steps // 20)
    check_positive_int("log_every", log_every)
    params = tree_map(lambda a: a.copy(), params)
    optimizer = Adam(lr=lr, clip_norm=clip)
    rng = B.rng(seed)
    dtype = B.value(params["inference"]["embed"]["E"]).dtype
    history: dict[str, list] = {key: [] for key in ("step", "loss", "rec", "kl", "kl_weight", "grad_norm", "seconds")}
    start = time.perf_counter()
    batches = _endless(data_batches)
    for step in range(steps):
        x, lengths = next(batches)
        x, lengths = B.asarray(x), B.asarray(lengths)
        batch, T = x.shape[:2]
        noise = rng.standard_normal((samples, batch, T, model.H), dtype=dtype)
        mask = dropout_mask(rng, dropout, (samples * batch, T, model.prior.lstm_size), dtype) if dropout else None
        w = kl_weight(step, schedule)
        with divergence_guard(step + 1, lr, history["loss"][-1] if history["loss"] else None):
            rec, kl, grads = model.elbo_and_grads(params, x, lengths, noise, w, mask)
            tokens = float(lengths.sum())
            rec_t, kl_t = float(rec.sum()) / tokens, float(kl.sum()) / tokens
            loss = check_loss(step + 1, -(rec_t - w * kl_t))
            norm = optimizer.step(params, grads)
        elapsed = time.perf_counter() - start
        for key, value in (("step", step), ("loss", loss), ("rec", rec_t), ("kl", kl_t),
                           ("kl_weight", w), ("grad_norm", norm), ("seconds", elapsed)):
            history[key].append(value)
        if progress is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
            progress({"step": step + 1, "steps": steps, "loss": history["loss"][-1], "rec": rec_t, "kl": kl_t,
                      "kl_weight": w, "elapsed": elapsed, "left": elapsed / (step + 1) * (steps - step - 1)})
    return params, history


def evaluate(model: LatentFlowModel, params: Tree, data_batches: Iterable[tuple[Any, Any]], samples: int = 50,
             seed: int | None = 0, chunk: int = 10) -> dict[str, Any]:
    """Importance-sampled NLL and the ELBO's parts over one pass of ``data_batches``.

    Draws ``samples`` noise samples per sequence, ``chunk`` at a time (memory), from ``B.rng(seed)``.
    Returns, per token in ``model.unit`` (bits per character or nats per time step):
    "nll" = -sum [log p(x | T) + log p(T)] / tokens (the importance-sampled estimate),
    "nll_given_length" (without log p(T)), "length_nll" (-log p(T) alone), "rec" (-E_q log p(x | z),
    the reconstruction), "kl" and "elbo_nll" = rec + kl >= nll_given_length; plus "unit",
    "tokens" and "sequences".
    """
    check_positive_int("samples", samples)
    check_positive_int("chunk", chunk)
    rng = B.rng(seed)
    dtype = B.value(params["inference"]["embed"]["E"]).dtype
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
