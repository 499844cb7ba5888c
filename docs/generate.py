"""Regenerate every table and figure in the docs from the saved runs under docs/runs.

    python docs/generate.py           # rewrite the generated parts of README.md and docs/*.md
    python docs/generate.py --check   # change nothing; exit 1 naming each part that disagrees
    python docs/generate.py --compare NAME[/seedS] FOLDER   # a fresh run (its --out) beside the saved runs' ranges

A generated part of a page lies between two HTML comments, which Markdown does not show:

    <!-- generated: run ising/seed0 -->   ... <!-- end generated -->

and what stands between them is rewritten from the saved runs, never edited by hand:

- ``run FOLDER``: the command, its time and machine, and the table and notes exactly as the run
  printed them (from its results.json), then its figures; above it one line saying whether the
  numbers held under every BLAS kernel the experiment was run with (``kernels``).
- ``spread NAME`` and ``spread NAME/seedS``: every number of the experiment's table as the mean and
  [min, max] over its saved runs (all of them, or those at seed S under every kernel), for the
  tables that move with round-off.
- ``file PATH``: a saved text file (a benchmark's output) in a code block.

The saved runs are made by ``python docs/rerun.py``, which re-runs every experiment.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mini_flows.experiments.tables import Report, Table, render_cell  # noqa: E402
from mini_flows.machine import summary  # noqa: E402

RUNS = "docs/runs"
BLOCK = re.compile(r"(<!-- generated: (?P<kind>run|spread|file) (?P<what>\S+) -->\n)(?P<body>.*?)(<!-- end generated -->)",
                   re.S)
NUMBER = re.compile(r"^(?P<number>[+-]?\d+(?:\.(?P<decimals>\d+))?)(?: ± [\d.]+| \([^()]*\))?$")  # "0.68 (captures modes)"


def load(folder: Path) -> dict[str, Any]:
    """A saved run's results.json."""
    with open(folder / "results.json", encoding="utf-8") as file:
        return json.load(file)


def runs_of(root: Path, what: str) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, record) of every saved run of ``what``, in folder order: "NAME" for all the runs
    under docs/runs/NAME, "NAME/seedS" for those at seed S (under every kernel)."""
    name, _, seed = what.partition("/")
    paths = sorted((root / RUNS / name).glob("*/results.json"))
    return [(p.parent.name, load(p.parent)) for p in paths if not seed or p.parent.name.split("-")[0] == seed]


def described(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """"seeds 0, 1, 2 under SkylakeX; seed 0 under Haswell and Sandybridge": the runs' seeds, by kernel."""
    seeds: dict[str, list[int]] = {}
    for _, record in runs:
        seeds.setdefault(kernel(record), []).append(record["settings"]["seed"])
    kernels: dict[str, list[str]] = {}
    for name, used in seeds.items():
        kernels.setdefault(", ".join(map(str, sorted(used))), []).append(name)
    return "; ".join(f"seed{'s' if ',' in used else ''} {used} under {_listed(names)}" for used, names in kernels.items())


def _listed(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def kernel(record: dict[str, Any]) -> str:
    return record["provenance"]["machine"]["blas"].get("kernel", "unknown")


def is_timing(column: str) -> bool:
    """Columns of milliseconds move with the machine's load, not with round-off."""
    return " ms" in f" {column}"  # "step ms", "gen ms (1)"


def untimed(record: dict[str, Any]) -> str:
    """The table and notes as printed, without the timing columns and notes: what must read the
    same for two runs to agree (numbers that differ below the printed digits agree)."""
    table = record["table"]
    keep = [i for i, column in enumerate(table["columns"]) if not is_timing(column)]
    rows = [[row[0]] + [row[1 + i] for i in keep] for row in table["rows"]]
    text = Table(table["title"], [table["columns"][i] for i in keep], rows, table["note"]).render()
    return "\n".join([text] + [note for note in record["notes"] if " ms" not in note])


def kernels_line(record: dict[str, Any], runs: list[tuple[str, dict[str, Any]]]) -> str:
    """Whether the run's numbers are the same under the other kernels of ``runs`` at its seed."""
    if all(is_timing(column) for column in record["table"]["columns"]):
        return "Times only: they depend on the CPU and on what else the machine is doing."
    seed, printed = record["settings"]["seed"], untimed(record)
    same_seed = [r for _, r in runs if r["settings"]["seed"] == seed and kernel(r) != kernel(record)]
    if not same_seed:
        return f"Run under one BLAS kernel only ({kernel(record)}): not checked against another."
    moved = sorted({kernel(r) for r in same_seed if untimed(r) != printed})
    if not moved:
        return (f"Deterministic: this run printed every number alike under the BLAS kernels "
                f"{_listed([kernel(record), *sorted({kernel(r) for r in same_seed})])} (timings aside).")
    return (f"Moves with round-off: under the kernel{'s' if len(moved) > 1 else ''} {_listed(moved)} the same seed "
            f"prints other numbers; the spread follows.")


def command(record: dict[str, Any]) -> str:
    """The command a reader types: no --out, no default --seed, and the kernel variable where the
    run forced one."""
    words = record["command"].split()
    for flag, default in (("--out", None), ("--seed", "0")):
        at = words.index(flag) if flag in words else None
        if at is not None and (default is None or words[at + 1] == default):
            del words[at : at + 2]
    forced = record["provenance"]["machine"]["environment"].get("OPENBLAS_CORETYPE")
    return (f"OPENBLAS_CORETYPE={forced} " if forced else "") + " ".join(words)


def report(record: dict[str, Any]) -> str:
    """The table and notes of a saved run, as the run printed them (``Report.render``)."""
    return Report(Table.from_json(record["table"]), record["notes"]).render()


def render_run(root: Path, what: str) -> str:
    """A saved run as the docs show it (see the module docstring)."""
    name, _ = what.split("/")
    record = load(root / RUNS / what)
    machine = summary(record["provenance"]["machine"])
    lines = [kernels_line(record, runs_of(root, name)), "",
             f"`{command(record)}`, {record['seconds']:.0f} s on {machine}:", "", "```", report(record), "```", ""]
    for figure in record["figures"]:
        lines += [f"![{Path(figure).stem}]({Path(RUNS).relative_to('docs') / what / figure})", ""]
    return "\n".join(lines)


def _number(cell: Any) -> tuple[float, int] | None:
    """(value, decimals) of a numeric cell: a number, or a text that is one (with a ± or a note)."""
    if isinstance(cell, dict):
        return (cell["ours"], cell["digits"]) if isinstance(cell["ours"], (int, float)) else None
    match = NUMBER.match(cell) if isinstance(cell, str) else None
    return (float(match["number"]), len(match["decimals"] or "")) if match else None


def spread_cell(cells: list[Any]) -> str:
    """"mean [min, max]" of the runs' numbers, the number alone where every run prints the same,
    the text where every run has the same text, and "varies" for texts that differ."""
    numbers = [_number(c) for c in cells]
    if any(n is None for n in numbers):
        texts = {render_cell(c) for c in cells}
        return texts.pop() if len(texts) == 1 else "varies"
    values = [value for value, _ in numbers]
    digits = max(d for _, d in numbers)
    sign = "+" if any(isinstance(c, str) and c.startswith("+") for c in cells) else ""  # as printed: "+0.0233"
    low, high = f"{min(values):{sign}.{digits}f}", f"{max(values):{sign}.{digits}f}"
    return low if low == high else f"{statistics.fmean(values):{sign}.{digits}f} [{low}, {high}]"


def ranges(root: Path, name: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(row, column) -> (min, max) over the saved runs ``name`` names (see ``runs_of``), for each
    numeric cell."""
    runs = [r["table"] for _, r in runs_of(root, name)]
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for table in runs:
        for row in table["rows"]:
            for column, cell in zip(table["columns"], row[1:]):
                number = _number(cell)
                if number is not None and not is_timing(column):
                    lo, hi = found.get((row[0], column), (number[0], number[0]))
                    found[(row[0], column)] = (min(lo, number[0]), max(hi, number[0]))
    return found


def compare(root: Path, name: str, folder: Path) -> int:
    """Print each number of a fresh run's table (its --out ``folder``) beside the [min, max] of the
    saved runs ``name`` names ("NAME" or "NAME/seedS"), rounded as printed; return how many lie
    outside."""
    record = load(folder)
    saved = ranges(root, name)
    outside = 0
    table = record["table"]
    for row in table["rows"]:
        for column, cell in zip(table["columns"], row[1:]):
            number = _number(cell)
            if number is None or (row[0], column) not in saved:
                continue
            (value, digits), (lo, hi) = number, saved[(row[0], column)]
            inside = round(lo, digits) <= round(value, digits) <= round(hi, digits)
            outside += not inside
            print(f"{'inside ' if inside else 'OUTSIDE'}  {row[0]} | {column}: {value:.{digits}f} "
                  f"in [{lo:.{digits}f}, {hi:.{digits}f}]")
    print(f"{outside} numbers outside the saved runs' range")
    return outside


def render_spread(root: Path, name: str) -> str:
    """The mean and [min, max] of each number in the table over the saved runs ``name`` names
    ("NAME" or "NAME/seedS", see ``runs_of``)."""
    runs = runs_of(root, name)
    if len(runs) < 2:
        raise ValueError(f"spread {name}: needs at least two saved runs under {RUNS}, found {len(runs)}")
    tables = [r["table"] for _, r in runs]
    first = tables[0]
    columns = [c for c in first["columns"] if not is_timing(c)]
    rows = []
    for row in first["rows"]:
        label = row[0]
        matching = [next((r for r in t["rows"] if r[0] == label), None) for t in tables]
        if any(m is None for m in matching):
            raise ValueError(f"spread {name}: row {label!r} is missing from a run")
        cells = [spread_cell([m[1 + t["columns"].index(c)] for m, t in zip(matching, tables)]) for c in columns]
        rows.append([label] + cells)
    table = Table(f"{first['title']}: mean [min, max] over {len(runs)} runs", columns, rows, note="")
    one_seed = len({r["settings"]["seed"] for _, r in runs}) == 1
    purpose = ("what round-off alone moves" if one_seed
               else "what the start and round-off move: a fresh run on another machine should land in this range")
    return "\n".join([f"Mean [min, max] over {len(runs)} runs ({described(runs)}), {purpose}; a number that "
                      f"every run printed alike stands alone:", "", "```", table.render(), "```", ""])


def render_file(root: Path, what: str) -> str:
    text = (root / what).read_text(encoding="utf-8").strip("\n")
    return "\n".join(["```", text, "```", ""])


RENDERERS = {"run": render_run, "spread": render_spread, "file": render_file}


def generate(text: str, root: Path) -> str:
    """``text`` with every generated part rewritten from the saved runs under ``root``."""
    return BLOCK.sub(lambda m: m[1] + RENDERERS[m["kind"]](root, m["what"]) + m[5], text)


def stale_parts(root: Path) -> list[str]:
    """"page: kind what" for every generated part whose text the saved runs no longer give (or
    whose saved run is missing or unreadable)."""
    stale = []
    for page in pages(root):
        for m in BLOCK.finditer(page.read_text(encoding="utf-8")):
            try:
                fresh = generate(m[0], root)
            except (OSError, ValueError, KeyError) as err:
                fresh = f"cannot be generated: {err}"
            if fresh != m[0]:
                stale.append(f"{page.relative_to(root)}: {m['kind']} {m['what']}")
    return stale


def pages(root: Path) -> list[Path]:
    """README.md and the pages under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        stale = stale_parts(ROOT)
        for part in stale:
            print(f"differs from the saved runs: {part}")
        print(f"{len(stale)} generated parts differ: run python docs/generate.py" if stale else "docs agree with the saved runs")
        return 1 if stale else 0
    if len(argv) == 3 and argv[0] == "--compare":
        return 1 if compare(ROOT, argv[1], Path(argv[2])) else 0
    if argv:
        print("usage: python docs/generate.py [--check | --compare NAME RUN_FOLDER]", file=sys.stderr)
        return 2
    failed = 0
    for page in pages(ROOT):
        text = page.read_text(encoding="utf-8")
        try:
            new = generate(text, ROOT)
        except (OSError, ValueError, KeyError) as err:
            print(f"generate: {page.relative_to(ROOT)} left as it was: {err}", file=sys.stderr)
            failed += 1
            continue
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"rewrote {page.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
