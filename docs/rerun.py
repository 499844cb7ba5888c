"""Re-run every experiment the docs show, refresh the saved runs under docs/runs, regenerate the docs.

    python docs/rerun.py                 # everything, one run after another (about an hour)
    python docs/rerun.py ising nlsq2d    # only these folders of docs/runs
    python docs/rerun.py --jobs 2        # two runs at a time (times in the tables then include the load)

Each saved run is `mini-flows run` at its defaults with one BLAS thread, into
docs/runs/FOLDER/seedS (and seedS-KERNEL where ``OPENBLAS_CORETYPE`` forces another BLAS kernel).
A run writes into a new folder, which replaces the saved one only once the run has finished;
the models it kept are dropped (megabytes each; `mini-flows run` makes them again). The tables
that move with round-off (``SEEDS``: those whose seed-0 table changed under a second kernel) are
run at three seeds, and every experiment at seed 0 under a second kernel (``OTHER_KERNEL``), so
that ``docs/generate.py`` can say which tables hold on any machine and give the spread of the
others. Progress, with the time left estimated from the saved runs' own times,
goes to the terminal; the total time is printed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs"

EXPERIMENTS = {  # folder under docs/runs: the arguments of `mini-flows run`
    "xor": ["xor"], "mog2d": ["mog2d"], "fullrank": ["fullrank"], "addition": ["addition"], "potts": ["potts"],
    "ising": ["ising"], "nlsq1d": ["nlsq1d"], "nlsq2d": ["nlsq2d"], "charlm": ["charlm"], "charflows": ["charflows"],
    "music": ["music"], "music-chorales": ["music", "--data", "chorales"], "timing": ["timing"],
}
SEEDS = {name: (0, 1, 2) for name in ("mog2d", "fullrank", "addition", "ising", "nlsq2d", "charflows", "music")}
OTHER_KERNEL = "Haswell"  # AVX2; forced on a machine whose OpenBLAS picks another (SkylakeX, Zen)
ONE_KERNEL = ("music-chorales", "timing")  # six minutes, checked on the synthetic music; times only


class Run(NamedTuple):
    folder: str
    seed: int
    kernel: str | None  # OPENBLAS_CORETYPE, or None for the kernel OpenBLAS picks

    @property
    def path(self) -> Path:
        return RUNS / self.folder / (f"seed{self.seed}" + (f"-{self.kernel.lower()}" if self.kernel else ""))


def planned(folders: list[str]) -> list[Run]:
    """Every run of ``folders``: each seed of ``SEEDS`` (0 alone elsewhere), and seed 0 under
    ``OTHER_KERNEL`` but for ``ONE_KERNEL``."""
    return ([Run(f, s, None) for f in folders for s in SEEDS.get(f, (0,))]
            + [Run(f, 0, OTHER_KERNEL) for f in folders if f not in ONE_KERNEL])


def expected_seconds(run: Run) -> float:
    """The saved run's own time, else its folder's seed-0 time, else a minute."""
    for path in (run.path, RUNS / run.folder / "seed0"):
        try:
            return float(json.loads((path / "results.json").read_text())["seconds"])
        except (OSError, ValueError, KeyError):
            continue
    return 60.0


def execute(run: Run) -> tuple[Run, float, str]:
    """Run into a new folder; on success put it in place of the saved run and drop its models."""
    fresh = run.path.with_name(run.path.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("OPENBLAS_CORETYPE", None)
    if run.kernel:
        env["OPENBLAS_CORETYPE"] = run.kernel
    args = [sys.executable, "-m", "mini_flows", "run", *EXPERIMENTS[run.folder], "--seed", str(run.seed), "--out", str(fresh)]
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return run, seconds, f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    shutil.rmtree(fresh / "models", ignore_errors=True)
    old = run.path.with_name(run.path.name + ".old")
    if run.path.exists():
        run.path.rename(old)
    fresh.rename(run.path)
    shutil.rmtree(old, ignore_errors=True)
    return run, seconds, "saved"


def main(argv: list[str]) -> int:
    jobs = 1
    if "--jobs" in argv:
        at = argv.index("--jobs")
        jobs = int(argv[at + 1])
        del argv[at : at + 2]
    unknown = [name for name in argv if name not in EXPERIMENTS]
    if unknown or jobs < 1:
        print(f"usage: python docs/rerun.py [--jobs N] [FOLDER ...]; folders: {', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    runs = planned(argv or list(EXPERIMENTS))
    expected = {run: expected_seconds(run) for run in runs}
    left = sum(expected.values()) / jobs
    print(f"{len(runs)} runs, about {left / 60:.0f} min at {jobs} at a time", flush=True)
    start, failed = time.perf_counter(), 0
    with ThreadPoolExecutor(jobs) as pool:
        for count, (run, seconds, outcome) in enumerate(pool.map(execute, runs), 1):
            left -= expected[run] / jobs
            failed += outcome != "saved"
            print(f"[{count}/{len(runs)}] {run.path.relative_to(ROOT)}: {seconds:.0f} s, {outcome}; "
                  f"about {max(left, 0) / 60:.0f} min left", flush=True)
    print(f"rerun: {len(runs) - failed} of {len(runs)} runs saved in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    generated = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py")], cwd=ROOT)
    return 1 if failed or generated.returncode else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
