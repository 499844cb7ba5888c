"""What every experiment shares: its settings, progress lines, the table with the paper's numbers
beside ours, results.json, figures (where matplotlib is installed) and a training loop.

An experiment is a function ``run(settings) -> Report``. It trains and evaluates on the current
backend, prints progress while it works, and returns a ``Report``: a ``Table`` whose cells hold
our number and, where the paper prints one, the paper's (rendered "ours (paper)"), the figures it
wrote and free-form results; ``write_results`` turns that into ``results.json``.

Example
-------
>>> table = Table("Table 1", ["AR base"], [["D = 2", cell(0.912, 0.9)]])
>>> print(table.render())
Table 1
            AR base
D = 2   0.912 (0.9)
(paper's value in parentheses)
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.files import write_atomically
from mini_flows.optim import Adam, check_loss, divergence_guard, loss_rise

PLOT_HINT = "pip install 'mini-flows[plot]'"


@dataclass(frozen=True)
class Settings:
    """What the command line passes to an experiment.

    out : the folder for results.json and figures (created by the caller).
    seed : seeds every data set, initialisation and noise generator of the run.
    steps : training steps per model (None: the experiment's default).
    quick : a seconds-long run on tiny settings (for tests and a first look).
    data : a user's data file (charlm: text, one sentence per line; music: a pickle), or None.
    verbose : print progress lines.
    """

    out: Path
    seed: int = 0
    steps: int | None = None
    quick: bool = False
    data: str | None = None
    verbose: bool = True
    steps_run: list[int] = field(default_factory=list, compare=False)

    def pick_steps(self, default: int, quick: int) -> int:
        """``steps`` when given, else the experiment's quick or default count; ``steps_run``
        records every count handed out, for results.json."""
        chosen = self.steps if self.steps is not None else quick if self.quick else default
        if chosen not in self.steps_run:
            self.steps_run.append(chosen)
        return chosen

    def say(self, line: str = "") -> None:
        """Print a line of commentary (when verbose)."""
        if self.verbose:
            print(line, flush=True)


def cell(ours: Any, paper: Any = None, digits: int = 3) -> dict[str, Any]:
    """A table cell: our value (a number, a string or None for "-"), the paper's (or None) and
    the decimals to print ours with."""
    return {"ours": ours, "paper": paper, "digits": digits}


def _text(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def render_cell(c: Any) -> str:
    """"ours (paper)" for a cell, its text for a plain string."""
    if not isinstance(c, dict):
        return str(c)
    ours = _text(c["ours"], c["digits"])
    if c["paper"] is None:
        return ours
    paper = repr(c["paper"]) if isinstance(c["paper"], float) else str(c["paper"])
    return f"{ours} ({paper})"


@dataclass
class Table:
    """A titled table: ``rows`` are lists whose first entry is the row label (a string) and whose
    other entries are ``cell``s (or strings), one per column."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = "paper's value in parentheses"

    def render(self) -> str:
        texts = [[""] + self.columns] + [[str(r[0])] + [render_cell(c) for c in r[1:]] for r in self.rows]
        widths = [max(len(t[i]) for t in texts) for i in range(len(texts[0]))]
        lines = [self.title]
        for t in texts:
            cells = [s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(t, widths))]
            lines.append("   ".join(cells).rstrip())
        has_paper = any(isinstance(c, dict) and c["paper"] is not None for r in self.rows for c in r[1:])
        if has_paper and self.note:
            lines.append(f"({self.note})")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        def plain(c: Any) -> Any:
            return {"ours": _finite(c["ours"]), "paper": c["paper"]} if isinstance(c, dict) else c

        rows = [[r[0]] + [plain(c) for c in r[1:]] for r in self.rows]
        return {"title": self.title, "columns": self.columns, "rows": rows}


@dataclass
class Report:
    """What an experiment returns: its table, notes to print under it, figures it wrote (paths
    relative to --out) and results (JSON-able numbers, lists, dicts) for results.json."""

    table: Table
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        return "\n".join([self.table.render()] + [f"- {n}" for n in self.notes])


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: those become None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def provenance() -> dict[str, Any]:
    """What produced a result: mini_flows', NumPy's and Python's versions, the git revision of the
    checkout the package runs from (None outside one) and the time, in UTC."""
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                  text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        revision = None
    return {"mini_flows": metadata.version("mini-flows"), "numpy": metadata.version("numpy"),
            "python": platform.python_version(), "git_revision": revision,
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_results(path: Path, name: str, report: Report, settings: Settings, backend: str, seconds: float,
                  command: str) -> None:
    """results.json, written all or nothing: the experiment, the command, the settings it ran with
    (``steps`` the counts actually used, a list where models differ), run time, versions and
    revision, table, results, figures, notes."""
    steps = settings.steps_run[0] if len(settings.steps_run) == 1 else settings.steps_run or None
    record = {
        "experiment": name,
        "command": command,
        "settings": {"seed": settings.seed, "steps": steps, "steps_given": settings.steps, "quick": settings.quick,
                     "data": settings.data, "backend": backend},
        "seconds": round(seconds, 2),
        "provenance": provenance(),
        "table": report.table.to_json(),
        "results": report.results,
        "figures": report.figures,
        "notes": report.notes,
    }
    text = json.dumps(_finite(record), indent=2, allow_nan=False) + "\n"
    write_atomically(path, lambda file: file.write(text.encode()))


def plot(path: Path, draw: Callable[[Any], None]) -> bool:
    """Draw a figure with ``draw(plt)`` and save it as ``path`` (a PNG); False, drawing nothing,
    where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    draw(plt)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(path, dpi=100, bbox_inches="tight")
    plt.close("all")
    return True


def heatmaps(images: list[tuple[str, Array]], extent: tuple[float, float, float, float], axes: tuple[str, str],
             value: str) -> Callable[[Any], None]:
    """Images side by side as plt -> None, each (n1, n2) indexed [x1, x2] over ``extent`` = (x1 low,
    x1 high, x2 low, x2 high), with labelled axes and a colour bar saying what ``value`` it shows."""
    def draw(plt: Any) -> None:
        fig, panels = plt.subplots(1, len(images), figsize=(4.6 * len(images), 4), squeeze=False)
        for ax, (title, p) in zip(panels[0], images):
            shown = ax.imshow(B.to_numpy(p).T, origin="lower", extent=extent, cmap="viridis")
            ax.set(title=title, xlabel=axes[0], ylabel=axes[1])
            fig.colorbar(shown, ax=ax, label=value, fraction=0.046, pad=0.04)
        fig.tight_layout()
    return draw


def table_bars(table: Table, columns: list[str], ylabel: str, rows: slice = slice(None)) -> Callable[[Any], None]:
    """The numbers of a table as grouped bars, as plt -> None: a group per row (``rows`` of them),
    a bar per column in ``columns`` (cells without a number are left out), and the paper's value,
    where the cell has one, as a black tick on its bar. Title and axis from the table."""
    picked = [table.columns.index(name) + 1 for name in columns]
    chosen = table.rows[rows]

    def number(c: Any, key: str) -> float | None:
        value = c.get(key) if isinstance(c, dict) else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def draw(plt: Any) -> None:
        fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.5 * len(chosen) * len(picked) + 2)), 4.5))
        width = 0.8 / len(picked)
        for k, (name, col) in enumerate(zip(columns, picked)):
            x = [i + (k - (len(picked) - 1) / 2) * width for i in range(len(chosen))]
            ours = [number(r[col], "ours") for r in chosen]
            ax.bar([xi for xi, v in zip(x, ours) if v is not None], [v for v in ours if v is not None], width,
                   label=name)
            papers = [(xi, number(r[col], "paper")) for xi, r in zip(x, chosen)]
            marks = [(xi, v) for xi, v in papers if v is not None]
            if marks:
                ax.scatter(*zip(*marks), marker="_", s=300, color="black", zorder=3,
                           label="paper" if k == 0 else None)
        ax.set_xticks(range(len(chosen)), [str(r[0]) for r in chosen], rotation=20, ha="right")
        ax.set(ylabel=ylabel, title=table.title.split(":")[0])
        ax.legend(fontsize=8)
        fig.tight_layout()
    return draw


def no_plot_note(filename: str) -> str:
    """What to print where matplotlib is missing."""
    return f"matplotlib is not installed: skipped the figure {filename} ({PLOT_HINT})"


def save_figure(settings: Settings, filename: str, draw: Callable[[Any], None], report: Report) -> None:
    """``plot`` into ``settings.out / filename`` and list the file in the report, or add a note
    saying matplotlib is missing."""
    if plot(settings.out / filename, draw):
        report.figures.append(filename)
    elif no_plot_note(filename) not in report.notes:
        report.notes.append(no_plot_note(filename))


class Progress:
    """Prints "label  step s/S  loss L  E s elapsed, R s left" about ``reports`` times over a run
    and at its end; silent when ``verbose`` is False."""

    def __init__(self, label: str, steps: int, verbose: bool = True, reports: int = 5):
        self.label, self.steps, self.verbose = label, steps, verbose
        self.every = max(1, steps // reports)
        self.start = time.perf_counter()

    def update(self, step: int, loss: float) -> None:
        """Call after step ``step`` (1-based) with its loss."""
        if self.verbose and (step % self.every == 0 or step == self.steps):
            print_progress(self.label, step, self.steps, loss, time.perf_counter() - self.start)


def print_progress(label: str, step: int, steps: int, loss: float, elapsed: float) -> None:
    """One progress line: label, step s/S, loss, seconds elapsed and (at the mean pace so far) left."""
    left = elapsed / step * (steps - step)
    print(f"  {label:<26} step {step:>5}/{steps}  loss {loss:8.4f}  {elapsed:6.1f}s elapsed, {left:6.1f}s left",
          flush=True)


def fit(model: Any, batch: Callable[[int], Array], steps: int, lr: float, label: str, verbose: bool = True,
        clip: float | None = 5.0, final_lr: float = 0.05) -> list[float]:
    """Adam on ``model.loss_and_grads(batch(step))`` for ``steps`` steps, updating ``model.params``.

    The learning rate decays linearly from ``lr`` to ``final_lr * lr`` (a quieter end, so a short
    run's final parameters are not those of one noisy step). Returns the losses, and prints a
    running mean (decay 0.9) through ``Progress``.
    """
    check_positive_int("steps", steps)
    optimizer = Adam(lr=lr, clip_norm=clip)
    progress = Progress(label, steps, verbose)
    losses, running = [], None
    for step in range(steps):
        optimizer.lr = lr * (1 - (1 - final_lr) * step / max(1, steps - 1))
        with divergence_guard(step + 1, optimizer.lr, running):
            loss, grads = model.loss_and_grads(batch(step))
            check_loss(step + 1, loss)
            optimizer.step(model.params, grads)
        losses.append(loss)
        running = loss if running is None else 0.9 * running + 0.1 * loss
        progress.update(step + 1, running)
    warning = loss_rise(losses)
    if warning and verbose:
        print(f"  {label}: {warning} (it started at {lr:g})", flush=True)
    return losses


def log_probs(log_prob: Callable[[Array], Array], tokens: Array, chunk: int = 4096) -> Array:
    """log_prob(tokens) : (n,) for the rows of ``tokens``, ``chunk`` rows per call (bounding the
    memory of one call)."""
    return B.xp().concatenate([log_prob(tokens[start:start + chunk]) for start in range(0, tokens.shape[0], chunk)])


def mean_nll(log_prob: Callable[[Array], Array], tokens: Array, chunk: int = 4096) -> float:
    """-mean log_prob(tokens) over the rows of ``tokens``, ``chunk`` rows at a time."""
    return -float(B.xp().mean(log_probs(log_prob, tokens, chunk)))


def identity_start(model: Any, margin: float = 0.3) -> None:
    """Make every flow of a ``DiscreteFlowModel`` exactly the identity, so the model starts as its
    base: zero each flow network's dense head, so that its location logits are the per-position
    bias for every input, and set that bias to ``margin`` (3 tau at the paper's tau = 0.1) at
    mu = 0 and 0 elsewhere. Then mu = 0 everywhere and log q(y) = log q_base(y) bit for bit; the
    straight-through gradient, which still flows at this margin, reaches the head and the bias at
    once (and the rest of the network once the head moves), so training moves a flow only where
    that lowers the loss. (Raising the mu = 0 logit on top of a random head instead leaves a random
    relabelling wherever the head's output varies by more than the margin: a quarter of the sites
    of an 8-unit LSTM flow.) The flows' networks must have a "head" (MLP, LSTM, Transformer)."""
    for i in range(len(model.flows)):
        net = model.params[f"flow_{i}"]["network"]
        if "head" not in net:
            raise ValueError(f"flow {i}'s network has no dense head to zero")
        net["head"] = {name: 0 * value for name, value in net["head"].items()}
        zero_first = B.xp().arange(net["bias"].shape[-1]) == 0
        net["bias"] = 0 * net["bias"] + B.asarray(zero_first * margin, net["bias"].dtype)


def all_sequences(length: int, vocab_size: int) -> Array:
    """Every sequence of ``length`` tokens in [0, vocab_size), row-major: ints (K^D, D)."""
    xp = B.xp()
    index = xp.arange(vocab_size**length)
    return xp.stack([(index // vocab_size ** (length - 1 - d)) % vocab_size for d in range(length)], axis=1)
