"""Figures: heat maps, a table's numbers as bars, and a report's figures (where matplotlib is
installed; otherwise a note says how to get it).

An experiment lists each figure in its report with the function that draws it (``save_figure``);
the command draws them all (``write_figures``) only after it has printed the table and written
results.json, so that a figure that fails (a full disk, a plotting error) is a warning and costs
the run nothing.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table
from mini_flows.files import write_atomically

PLOT_HINT = "pip install 'mini-flows[plot]'"


def plot(path: Path, draw: Callable[[Any], None]) -> bool:
    """Draw a figure with ``draw(plt)`` and save it as ``path`` (a PNG), all or nothing (a failed
    write leaves no partial file); False, drawing nothing, where matplotlib is not installed."""
    if not plotting_available():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        draw(plt)
        png = io.BytesIO()
        plt.savefig(png, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close("all")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: file.write(png.getvalue()))
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
    """List the figure ``filename`` (in ``settings.out``) in the report with its ``draw``, for
    ``write_figures`` to draw once results.json is written (a figure that fails then costs the run
    nothing), or add a note saying matplotlib is missing. A second drawing of one name replaces
    the first."""
    if not plotting_available():
        if no_plot_note(filename) not in report.notes:
            report.notes.append(no_plot_note(filename))
        return
    if filename not in report.figures:
        report.figures.append(filename)
    report.drawings[filename] = draw


def plotting_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_figures(report: Report, out: Path) -> list[str]:
    """Draw every figure of the report into ``out``; returns a line for each that failed (drawing
    or writing it: a full disk, a plotting error), which is then dropped from ``report.figures``
    with a note saying so. A previous run's file of that name is removed, so that no figure is
    left looking current beside results it does not show."""
    failures = []
    for filename in list(report.figures):
        try:
            if not plot(out / filename, report.drawings[filename]):
                raise ImportError("matplotlib could not be imported")
        except Exception as err:  # any failure of a figure is a warning: the run's numbers are safe
            reason = getattr(err, "strerror", None) or (str(err).splitlines() or [""])[0] or type(err).__name__
            line = f"could not write the figure {filename} ({reason})"
            try:
                (out / filename).unlink()
                line += f"; removed the previous run's {filename}"
            except FileNotFoundError:
                pass
            except OSError as stuck:
                line += f"; the previous run's {filename} is still there ({stuck.strerror or stuck})"
            report.figures.remove(filename)
            report.notes.append(line)
            failures.append(line)
    return failures
