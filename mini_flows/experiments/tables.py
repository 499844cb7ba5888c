"""An experiment's results: the table with the paper's numbers beside ours, the report and
results.json.

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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from mini_flows.experiments.settings import Settings
from mini_flows.files import write_atomically
from mini_flows.machine import describe
from mini_flows.version import __version__


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
        """The table as JSON, everything ``from_json`` needs to render it as it was printed."""
        def plain(c: Any) -> Any:  # a non-finite number is saved as its text ("nan", "inf"), as it prints
            if not isinstance(c, dict):
                return c
            ours = str(c["ours"]) if isinstance(c["ours"], float) and not math.isfinite(c["ours"]) else c["ours"]
            return {"ours": ours, "paper": c["paper"], "digits": c["digits"]}

        rows = [[r[0]] + [plain(c) for c in r[1:]] for r in self.rows]
        return {"title": self.title, "columns": self.columns, "rows": rows, "note": self.note}

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> "Table":
        """The table ``to_json`` saved; it renders as the run printed it."""
        return cls(saved["title"], saved["columns"], saved["rows"], saved["note"])


@dataclass
class Report:
    """What an experiment returns: its table, notes to print under it, results (JSON-able numbers,
    lists, dicts) for results.json, and its figures (paths relative to --out), each drawn by
    ``drawings[path]`` (plt -> None) when ``figures.write_figures`` writes them."""

    table: Table
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    drawings: dict[str, Callable[[Any], None]] = field(default_factory=dict, repr=False)

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


def _installed_version(distribution: str) -> str | None:
    """The version of an installed distribution, None where its metadata is missing."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str, cwd: Path) -> str | None:
    """git's answer (stdout, stripped) in ``cwd``, None where git fails or is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def git_revision() -> str | None:
    """The commit of the checkout the package runs from: git's HEAD where the top level of the work
    tree holding the package is the folder that holds the package itself; None otherwise (an
    installed copy inside another project's work tree, such as a virtual environment there, whose
    HEAD says nothing about this code). A package reached through a symbolic link counts where it
    really lives."""
    checkout = Path(__file__).resolve().parents[2]  # mini_flows/experiments/tables.py -> the folder holding mini_flows
    top = _git("rev-parse", "--show-toplevel", cwd=checkout)
    if top is None or Path(top).resolve() != checkout:
        return None
    return _git("rev-parse", "HEAD", cwd=checkout)


def provenance() -> dict[str, Any]:
    """What produced a result: mini_flows' version (``mini_flows.version``: the package that runs
    knows it, installed or not), NumPy's and Python's, the git revision of the checkout the
    package runs from (None outside one), the time, in UTC, and the machine (``machine.describe``:
    CPU, BLAS kernel and threads, which decide the round-off)."""
    return {"mini_flows": __version__, "numpy": _installed_version("numpy"),
            "python": platform.python_version(), "git_revision": git_revision(),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": describe()}


def write_results(path: Path, name: str, report: Report, settings: Settings, backend: str, seconds: float,
                  command: str) -> None:
    """results.json, written all or nothing: the experiment, the command, the settings it ran with
    (``steps`` the counts actually used, a list where models differ), run time, versions and
    revision, table, results, figures, notes, and the models the run kept (``Settings.keep_model``)."""
    steps = settings.steps_run[0] if len(settings.steps_run) == 1 else settings.steps_run or None
    record = {
        "experiment": name,
        "command": command,
        "settings": {"seed": settings.seed, "steps": steps, "steps_given": settings.steps, "quick": settings.quick,
                     "data": settings.data, "spread": settings.spread, "backend": backend},
        "seconds": round(seconds, 2),
        "provenance": provenance(),
        "table": report.table.to_json(),
        "results": report.results,
        "figures": report.figures,
        "notes": report.notes,
        "models": settings.models,
    }
    text = json.dumps(_finite(record), indent=2, allow_nan=False) + "\n"
    write_atomically(path, lambda file: file.write(text.encode()))
