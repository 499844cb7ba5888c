"""One training loop for every model, and the one progress printer.

``fit`` runs an optimiser on any loss whose gradient a model computes by hand:

    params, history = fit(loss_and_grads, params, batches, steps, optimizer, schedule, reporter)

``loss_and_grads(params, batch)`` returns ``(loss, grads)`` or ``(loss, grads, extras)``, with
``extras`` a dict of floats to record (say the KL weight); ``batches`` is a function of the step
or an iterable of batches; ``schedule(step)`` sets the learning rate; a ``Progress`` prints lines.
The input ``params`` are left alone; ``fit`` returns the trained copy.

Model selection, as a practitioner does it: with ``validate=Validation(score, every)`` (``score``
of the parameters on held-out data, lower is better) ``fit`` scores the starting parameters, then
every ``every`` steps and after the last, and returns the parameters of the best score (the
earliest of ties), never worse on that score than where they started.

``Progress`` prints a model's step, running means of its loss (in its unit) and extras (or a
summary of them), elapsed and time left
(or, without a loss, any long loop's progress, such as building a data set); given a ``RunClock``
that knows how many steps the whole run plans (every model of an experiment), it also prints the
run's time left. At the end it warns where the loss rose and
where any check of the history it is given finds fault.

Example
-------
>>> from mini_flows.discrete import build_model
>>> model = build_model("bipartite", vocab_size=4, length=6, network="mlp", hidden=8)
>>> data = B.asarray(B.host_rng(0).integers(0, 4, (64, 6)))
>>> params, history = fit(model.loss_and_grads, model.init(B.host_rng(0)), lambda step: data, 3, Adam(lr=1e-2))
>>> len(history["loss"])
3
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

from mini_flows import backend as B
from mini_flows.checks import check_positive_int
from mini_flows.nn.tree import Tree, tree_map
from mini_flows.optim import Adam, check_loss, divergence_guard, loss_rise
from mini_flows.process import one_blas_thread

LossAndGrads = Callable[[Tree, Any], tuple]
Summary = Callable[[Mapping[str, float], Mapping[str, float]], Mapping[str, "float | str"]]
"""(a step's extras, the first step's) -> what a progress line shows: name -> number or text."""
Check = Callable[[Mapping[str, list]], list[str]]
"""A training history -> warnings to print at the end of training."""


class Validation(NamedTuple):
    """``fit``'s model selection: ``score(params)`` -> a float, lower is better (say the mean NLL
    of a validation split), taken at the start, every ``every`` steps and after the last step."""

    score: Callable[[Tree], float]
    every: int


class RunClock:
    """The steps a whole run (several models, one after another) plans and has done, for its
    time left at the pace of its last ``PACE_WINDOW`` steps: models of one run can differ tenfold
    in their step time (an LSTM baseline, then latent flow models), and the mean pace since the
    start would promise the slow models the fast one's pace. ``plan(steps)`` adds to the total;
    the clock starts at the first ``plan``, so time spent between models (evaluation) counts
    toward the pace of the steps around it."""

    PACE_WINDOW = 20

    def __init__(self) -> None:
        self.total = self.done = 0
        self.start: float | None = None
        self.times: deque[float] = deque(maxlen=self.PACE_WINDOW + 1)  # the start, then each step's end

    def plan(self, steps: int) -> None:
        """Add ``steps`` training steps to the run's total."""
        check_positive_int("steps", steps, minimum=0)
        if self.start is None:
            self.start = time.perf_counter()
            self.times.append(self.start)
        self.total += steps

    def tick(self) -> None:
        """One planned step done."""
        self.done += 1
        self.times.append(time.perf_counter())

    def left(self) -> float | None:
        """Seconds left for the whole run at the pace of its last steps; None before any plan or step."""
        if self.start is None or self.done == 0:
            return None
        pace = (self.times[-1] - self.times[0]) / (len(self.times) - 1)
        return pace * max(0, self.total - self.done)


class Progress:
    """Prints "label  step s/S  loss L UNIT  extras  E s elapsed, R s left[, run R s left]" about
    ``reports`` times over a model's ``steps`` and at its end (the loss left out for a loop
    without one; ``unit``, such as "nats/seq", after it where given); at the end, a warning where
    the loss clearly rose (``optim.loss_rise``) unless ``warn_rise`` is False (for a loss that
    rises by design, such as an ELBO whose KL weight is annealed upward). ``clock``: the whole
    run's ``RunClock``, ticked every step. Silent when ``verbose`` is False (the clock still ticks).

    ``summary(extras, first)`` -> {name: number or text}: what a line shows of the extras, given
    the first step's (default: every extra), for models whose extras are too many to print.
    ``checks``: functions of the training history (``fit``'s) that return warnings to print at
    the end, after the loss's own.

    Every number a line shows is averaged the same way: a running mean with decay 0.9 over the
    steps so far, m_s = 0.9 m_{s-1} + 0.1 v_s (m_1 = v_1), of the loss and of each extra alike,
    so that the numbers of one line describe the same recent steps (a single step's extras are as
    noisy as its loss); ``summary`` condenses the extras' means. A non-finite value shows as it is
    and restarts its mean.
    """

    def __init__(self, label: str, steps: int, verbose: bool = True, reports: int = 5, clock: RunClock | None = None,
                 warn_rise: bool = True, summary: Summary | None = None, checks: Sequence[Check] = (),
                 unit: str | None = None):
        check_positive_int("steps", steps)
        check_positive_int("reports", reports)
        self.label, self.steps, self.verbose, self.clock = label, steps, verbose, clock
        self.warn_rise, self.summary, self.checks, self.unit = warn_rise, summary, tuple(checks), unit
        self.every = max(1, steps // reports)
        self.start = time.perf_counter()
        self.running: float | None = None
        self.means: dict[str, float] = {}
        self.first: dict[str, float] | None = None

    def update(self, step: int, loss: float | None = None, extras: dict[str, float] | None = None) -> None:
        """Call after step ``step`` (1-based) with its loss and any extras to show; a loop without a
        loss (loading data) leaves ``loss`` out, and its lines show no loss."""
        extras = extras or {}
        if loss is not None:
            self.running = _running_mean(self.running, loss)
        self.means = {key: _running_mean(self.means.get(key), value) for key, value in extras.items()}
        self.first = extras if self.first is None else self.first
        if self.clock is not None:
            self.clock.tick()
        if not self.verbose or (step % self.every and step != self.steps):
            return
        elapsed = time.perf_counter() - self.start
        shown = self.means if self.summary is None else self.summary(self.means, self.first)
        text = "".join(f"  {name} {value if isinstance(value, str) else f'{value:7.4f}'}"
                       for name, value in shown.items())
        run_left = None if self.clock is None else self.clock.left()
        run = "" if run_left is None else f", run {run_left:6.1f}s left"
        unit = f" {self.unit}" if self.unit else ""
        shown_loss = "" if self.running is None else f"  loss {self.running:8.4f}{unit}"
        print(f"  {self.label:<26} step {step:>5}/{self.steps}{shown_loss}{text}  "
              f"{elapsed:6.1f}s elapsed, {elapsed / step * (self.steps - step):6.1f}s left{run}", flush=True)

    def close(self, history: dict[str, list], lr: float) -> None:
        """After the last step, with ``fit``'s history: print (when verbose) a warning where the
        loss rose, naming ``lr``, the first learning rate, the warnings of every check and, where
        ``fit`` selected on validation, the step it kept and its score."""
        if not self.verbose:
            return
        warnings = [warning for check in self.checks for warning in check(history)]
        rise = loss_rise(history["loss"]) if self.warn_rise else None
        if rise:
            warnings.insert(0, f"{rise} (it started at {lr:g})")
        for warning in warnings:
            print(f"  {self.label}: {warning}", flush=True)
        if history.get("valid"):
            unit = f" {self.unit}" if self.unit else ""
            valid = history["valid"]
            print(f"  {self.label}: kept step {history['best_step'][0]} of {self.steps}, validation "
                  f"{min(valid):.4f}{unit} (start {valid[0]:.4f}, last {valid[-1]:.4f})", flush=True)


def _running_mean(mean: float | None, value: float) -> float:
    """0.9 mean + 0.1 value; the value itself to start, or after a non-finite mean."""
    return value if mean is None or not math.isfinite(mean) else 0.9 * mean + 0.1 * value


def linear_decay(lr: float, steps: int, final: float = 0.05) -> Callable[[int], float]:
    """step (0-based) -> lr falling linearly from ``lr`` to ``final * lr`` at the last step (a
    quieter end, so a short run's final parameters are not those of one noisy step)."""
    return lambda step: lr * (1 - (1 - final) * step / max(1, steps - 1))


def epochs(batches_of_epoch: Callable[[int], Iterable[Any]]) -> Iterator[Any]:
    """Batches forever from ``batches_of_epoch(epoch)``, epoch 0, 1, ... (say a reshuffling loader);
    ValueError where an epoch yields no batch."""
    epoch = 0
    while True:
        empty = True
        for batch in batches_of_epoch(epoch):
            empty = False
            yield batch
        if empty:
            raise ValueError(f"epoch {epoch} yielded no batch")
        epoch += 1


def _next_batch(batches: Callable[[int], Any] | Iterator[Any], step: int, steps: int) -> Any:
    if callable(batches):
        return batches(step)
    try:
        return next(batches)
    except StopIteration:
        raise ValueError(f"the batches ran out after {step} of {steps} steps; pass a function of the step, "
                         "or train.epochs(...) for endless epochs") from None


@one_blas_thread()
def fit(loss_and_grads: LossAndGrads, params: Tree, batches: Callable[[int], Any] | Iterable[Any], steps: int,
        optimizer: Adam | None = None, schedule: Callable[[int], float] | None = None,
        reporter: Progress | None = None, validate: Validation | None = None) -> tuple[Tree, dict[str, list]]:
    """``steps`` optimiser steps on ``loss_and_grads(params, batch)``; returns (params, history).

    Parameters
    ----------
    loss_and_grads : (params, batch) -> (loss, grads) or (loss, grads, extras); loss a float,
        grads a tree mirroring params, extras a dict of floats recorded in the history.
    params : the starting tree (not modified; the trained copy is returned).
    batches : step (0-based) -> batch, or an iterable read once, one batch per step (``epochs``
        makes endless ones).
    optimizer : default ``Adam()``; its ``lr`` is set by ``schedule(step)`` before each step
        where a schedule is given.
    reporter : a ``Progress`` (or None: silent).
    validate : a ``Validation(score, every)``: the parameters returned are those of the lowest
        score among the start's, every ``every`` steps' and the last step's (the earliest of ties),
        not the last step's. None: the last step's.

    history maps "step" (0-based), "loss", "grad_norm" (before clipping), "seconds" (since the
    start) and every extras key to lists with one entry per step; with ``validate``, also
    "valid_step" (the steps taken when scored: 0 is the start) and "valid" (the scores), and
    "best_step", the one step whose parameters were returned. NaN or infinity in a step raises
    ``optim.TrainingDiverged`` naming the step, the last loss and the learning rate. BLAS runs on
    one thread meanwhile unless the environment names a count (``process.one_blas_thread``).
    """
    check_positive_int("steps", steps)
    if validate is not None:
        check_positive_int("validate.every", validate.every)
    optimizer = Adam() if optimizer is None else optimizer
    params = tree_map(lambda a: a.copy(), params)
    source = batches if callable(batches) else iter(batches)
    history: dict[str, list] = {"step": [], "loss": [], "grad_norm": [], "seconds": []}
    best = _Best(validate, params, history)
    start, first_lr = time.perf_counter(), schedule(0) if schedule is not None else optimizer.lr
    for step in range(steps):
        if schedule is not None:
            optimizer.lr = schedule(step)
        batch = _next_batch(source, step, steps)
        with divergence_guard(step + 1, optimizer.lr, history["loss"][-1] if history["loss"] else None):
            loss, grads, *rest = loss_and_grads(params, batch)
            check_loss(step + 1, loss)
            norm = optimizer.step(params, grads)
        extras = rest[0] if rest else {}
        for key, value in (("step", step), ("loss", loss), ("grad_norm", norm),
                           ("seconds", time.perf_counter() - start), *extras.items()):
            history.setdefault(key, []).append(value)
        best.score(params, step + 1, step + 1 == steps)
        if reporter is not None:
            reporter.update(step + 1, loss, extras)
    if reporter is not None:
        reporter.close(history, first_lr)
    return best.params(params), history


class _Best:
    """``fit``'s model selection: scores the parameters when due, records the scores in the
    history and keeps a copy of the best parameters (the earliest of ties)."""

    def __init__(self, validate: Validation | None, params: Tree, history: dict[str, list]):
        self.validate, self.history, self.kept = validate, history, None
        if validate is not None:
            history.update(valid_step=[], valid=[], best_step=[])
            self.score(params, 0, True)

    def score(self, params: Tree, step: int, last: bool) -> None:
        """Score ``params`` after ``step`` steps when due (every ``every`` steps, and at ``last``)."""
        if self.validate is None or not (last or step % self.validate.every == 0):
            return
        value = float(self.validate.score(params))
        scores = self.history["valid"]
        if not scores or value < min(scores):
            self.kept = tree_map(lambda a: a.copy(), params)
            self.history["best_step"] = [step]
        self.history["valid_step"].append(step)
        scores.append(value)

    def params(self, last: Tree) -> Tree:
        """The parameters to return: the best scored, or ``last`` without validation."""
        return last if self.kept is None else self.kept


__all__ = ["Progress", "RunClock", "Validation", "epochs", "fit", "linear_decay"]
