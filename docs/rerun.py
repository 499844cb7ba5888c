"""Re-run every experiment the docs show, refresh the saved runs under docs/runs, regenerate the docs.

    python docs/rerun.py                 # everything, one run after another
    python docs/rerun.py ising nlsq2d    # only these folders of docs/runs
    python docs/rerun.py --jobs 2        # two at a time: 48 min on a 2-core machine (times then include the load)
    python docs/rerun.py --missing       # only the runs not saved yet (after an interruption)

Each saved run is `mini-flows run` at its defaults with one BLAS thread, into
docs/runs/FOLDER/seedS (and seedS-KERNEL where ``OPENBLAS_CORETYPE`` forces another BLAS kernel).
A run writes into a new folder, which replaces the saved one only once the run has finished; the
models it kept are dropped (megabytes each; `mini-flows run` makes them again), and so are the
figures of every run but seed 0 under the kernel OpenBLAS picks, the one the docs show. The
experiments whose seed-0 table changed under a second kernel, and mog2d, whose flow sticks at some
seeds (``SEEDS``), run at three seeds and at seed 0 under two more kernels; every other experiment
runs at seed 0 under a second kernel (``OTHER_KERNELS``), so that ``docs/generate.py`` can say
which tables hold on any machine and give the spread of the others. Progress, with the time left
estimated from the saved runs' own times, goes to the terminal; the total time is printed at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs"

EXPERIMENTS = {  # folder under docs/runs: the arguments of `mini-flows run`
    "xor": ["xor"], "mog2d": ["mog2d"], "fullrank": ["fullrank"], "addition": ["addition"], "potts": ["potts"],
    "ising": ["ising"], "potts-nonequilibrium": ["potts-nonequilibrium"], "ising-nonequilibrium": ["ising-nonequilibrium"],
    "nlsq1d": ["nlsq1d"], "nlsq2d": ["nlsq2d"], "charlm": ["charlm"], "charflows": ["charflows"],
    "music": ["music"], "music-chorales": ["music", "--data", "chorales"], "timing": ["timing"],
}
SEEDS = {name: (0, 1, 2) for name in ("mog2d", "fullrank", "addition", "ising", "nlsq2d", "charflows", "music")}
OTHER_KERNELS = ("Haswell", "Sandybridge")  # AVX2 and AVX, forced on a CPU whose OpenBLAS picks another (SkylakeX, Zen)
ONE_KERNEL = ("music-chorales", "timing")  # six minutes, checked on the synthetic music; times only


class Run(NamedTuple):
    folder: str
    seed: int
    kernel: str | None  # OPENBLAS_CORETYPE, or None for the kernel OpenBLAS picks

    @property
    def path(self) -> Path:
        return RUNS / self.folder / (f"seed{self.seed}" + (f"-{self.kernel.lower()}" if self.kernel else ""))


def planned(folders: list[str]) -> list[Run]:
    """Every run of ``folders``: each seed of ``SEEDS`` (0 alone elsewhere); seed 0 under the first
    of ``OTHER_KERNELS`` (but for ``ONE_KERNEL``), and under each of them for the folders of ``SEEDS``."""
    return ([Run(f, s, None) for f in folders for s in SEEDS.get(f, (0,))]
            + [Run(f, 0, k) for f in folders if f not in ONE_KERNEL
               for k in (OTHER_KERNELS if f in SEEDS else OTHER_KERNELS[:1])])


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
    if run.seed != 0 or run.kernel:  # the docs show the figures of seed 0 under the native kernel only
        for figure in fresh.glob("*.png"):
            figure.unlink()
    old = run.path.with_name(run.path.name + ".old")
    if run.path.exists():
        run.path.rename(old)
    fresh.rename(run.path)
    shutil.rmtree(old, ignore_errors=True)
    return run, seconds, "saved"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help=f"folders of docs/runs to re-run (default: all): {', '.join(EXPERIMENTS)}")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--missing", action="store_true", help="only the runs not saved yet (to resume)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    unknown = [folder for folder in args.folders if folder not in EXPERIMENTS]
    if unknown:
        parser.error(f"no such folder: {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    jobs = args.jobs
    runs = [run for run in planned(args.folders or list(EXPERIMENTS)) if not (args.missing and run.path.exists())]
    expected = {run: expected_seconds(run) for run in runs}
    left = sum(expected.values()) / jobs
    print(f"{len(runs)} runs, about {left / 60:.0f} min at {jobs} at a time", flush=True)
    start, failed = time.perf_counter(), 0
    with ThreadPoolExecutor(jobs) as pool:
        for count, done in enumerate(as_completed([pool.submit(execute, run) for run in runs]), 1):
            run, seconds, outcome = done.result()
            left -= expected[run] / jobs
            failed += outcome != "saved"
            print(f"[{count}/{len(runs)}] {run.path.relative_to(ROOT)}: {seconds:.0f} s, {outcome}; "
                  f"about {max(left, 0) / 60:.0f} min left", flush=True)
    print(f"rerun: {len(runs) - failed} of {len(runs)} runs saved in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    generated = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py")], cwd=ROOT)
    return 1 if failed or generated.returncode else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
