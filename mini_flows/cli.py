"""The ``mini-flows`` command (also ``python -m mini_flows``).

    mini-flows list                      every experiment, one line each
    mini-flows run NAME [--backend numpy|cupy] [--seed S] [--steps N] [--out DIR] [--quick] [--data FILE]
                        [--threads N]
    mini-flows demo [--backend numpy|cupy] [--seed S] [--out DIR] [--threads N]
    mini-flows sample DIR [--model LABEL] [-n N] [--seed S]

``run`` trains and evaluates one experiment, printing progress (step, loss, time left), then a
table with the paper's numbers beside ours, and writes results.json (and PNG figures where
matplotlib is installed) into --out (default: mini-flows-results/NAME). ``demo`` is a tour of
both papers in about a minute. ``run`` keeps every model it trains (DIR/models, listed in
results.json; ``mini_flows.experiments.saved``), and ``sample`` prints N samples (default 5) of
each model a finished run in DIR kept, or of the one --model names: one sample a line, decoded as
the data reads (text as text, piano rolls as MIDI notes, else numbers); with several models each
model's samples follow a line "== LABEL". The command runs BLAS on one thread (OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, MKL_NUM_THREADS = 1) unless the environment names a count or ``--threads N`` does
(the flag wins): these models' matrix products are small, and on a few cores extra BLAS threads
make them several times slower. It also lets malloc reuse freed memory (``mini_flows.process``).

Results. A run checks its arguments and --out before anything, then moves the previous run's
results.json aside (to results.previous.json) and puts it back if it stops before writing its own;
it prints the table and writes results.json before it draws the figures, and a figure that fails
is a warning. An --out holding another experiment's results.json is refused, not overwritten.

Exit status. Bad arguments give a one-line error on stderr and exit status 2: among them a --data
file that is missing, a folder or unreadable (or, for charlm and charflows, not UTF-8 text), and
an --out that is a file, unwritable or holds another experiment's results. An experiment that
fails on its input (a pickle it refuses, data whose models would not fit in memory, no GPU for
--backend cupy, no music21 for --data chorales) exits with status 1, also in one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mini_flows.process import BLAS_THREAD_VARIABLES, prepare


class _Unreadable(Exception):
    """What ``_threads_flag``'s parser raises instead of printing usage and exiting."""


class _ThreadsParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Unreadable(message)


def _threads_flag(argv: Sequence[str]) -> int | None:
    """The value of ``--threads`` in ``argv`` as the command's parser will read it (``--threads N``,
    ``--threads=N``, ``--threads=+2``, an abbreviation, the last of several), read before NumPy
    loads so that BLAS starts with it; None where absent or not a positive integer (the parser
    reports that)."""
    parser = _ThreadsParser(add_help=False)
    parser.add_argument("--threads")
    try:
        value = parser.parse_known_args(argv)[0].threads
        threads = None if value is None else int(value)
    except (_Unreadable, ValueError):
        return None
    return threads if threads is not None and threads >= 1 else None


prepare(_threads_flag(sys.argv[1:]))  # before NumPy loads (mini_flows.process)

import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.data.text import check_text  # noqa: E402
from mini_flows.discrete.flows import SPREAD  # noqa: E402
from mini_flows.experiments import EXPERIMENTS  # noqa: E402
from mini_flows.experiments.figures import write_figures  # noqa: E402
from mini_flows.experiments.music import CHORALES  # noqa: E402
from mini_flows.experiments.saved import FOLDER, decode, draw, load_model  # noqa: E402
from mini_flows.experiments.settings import Settings  # noqa: E402
from mini_flows.experiments.tables import Report, write_results  # noqa: E402

DATA_EXPERIMENTS = ("charlm", "charflows", "music")
TEXT_EXPERIMENTS = ("charlm", "charflows")  # their --data is UTF-8 text
RESULTS, PREVIOUS = "results.json", "results.previous.json"
MAX_STEPS = 10_000_000  # days of training for the smallest model here; beyond it a typo, not a plan
MAX_SAMPLES = 100_000  # samples per model for ``sample``; beyond it a typo, not a reading

DEMO = [  # (experiment, steps or None for its default, what it shows)
    ("xor", None, "Tran et al. 3.2: a factorized base cannot hold the XOR table's correlation; one discrete flow "
                  "(x1, x2) -> (x1, x1 xor x2) reproduces it exactly, and a learnt flow finds it from samples."),
    ("mog2d", 300, "Tran et al. Figure 2: on a discretized ring of 8 Gaussians a factorized base spreads its mass "
                   "over a 5 x 5 grid of blobs; one discrete flow moves it towards the 8 modes (a short run)."),
    ("nlsq1d", None, "Ziegler and Rush Figure 5a, b: four NLSq layers turn N(0, 1) into a multimodal density, "
                     "which affine layers cannot (they only shift and scale)."),
    ("charlm", 40, "Ziegler and Rush Tables 1 and 2 in miniature, with Tran et al.'s bipartite flow: the LSTM "
                   "baseline, a discrete bipartite flow and latent flow models (AF / AF, AF / SCF, IAF / SCF, "
                   "ablations) trained briefly on a synthetic character source with a known likelihood; NLL by "
                   "importance sampling. 40 steps leave every model far from converged, so read the gaps to the "
                   "source's floor and the ordering, not the paper's values; 'mini-flows run charlm' trains 300 "
                   "steps, where the latent flows come within 0.05 bits of the floor and the bipartite flow stays "
                   "0.5 bits above it."),
]


class CommandError(Exception):
    """A bad argument: reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(message)


def _experiment_list() -> str:
    """Every experiment, one line each: name, where in the papers, what it shows."""
    width = max(len(name) for name in EXPERIMENTS)
    source = max(len(e.source) for e in EXPERIMENTS.values())
    return "\n".join(f"{e.name:<{width}}  {e.source:<{source}}  {e.summary}" for e in EXPERIMENTS.values())


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mini-flows", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Discrete flows and latent normalizing flows: the papers' experiments.",
                     epilog="experiments (mini-flows run NAME):\n" + _experiment_list())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="name every experiment, one line each")
    run = sub.add_parser("run", help="train and evaluate one experiment", epilog="experiments:\n" + _experiment_list(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("name", help="the experiment (see mini-flows list)")
    run.add_argument("--steps", type=int, default=None, help="training steps per model (default: the experiment's)")
    run.add_argument("--quick", action="store_true", help="tiny settings: seconds, for a first look and the tests")
    run.add_argument("--data", default=None, help="charlm: a text file, one sentence per line; charflows: any text "
                     "file (cut into chunks); music: a .pickle, or 'chorales' for the Bach chorales of music21's "
                     "corpus (pip install 'mini-flows[music]'; built once, in about a minute, and cached)")
    run.add_argument("--plain-straight-through", action="store_true",
                     help="discrete flows: the paper's straight-through gradient, without the bound on the spread of "
                          "the location logits that keeps flows from freezing")
    demo = sub.add_parser("demo", help="a tour of both papers in about a minute")
    sample = sub.add_parser("sample", help="print samples of the models a finished run kept")
    sample.add_argument("folder", help="the run's --out folder, holding its results.json")
    sample.add_argument("--model", default=None, help="the label of one model (default: every model the run kept)")
    sample.add_argument("-n", type=int, default=5, help="samples per model (default 5)")
    sample.add_argument("--seed", type=int, default=0, help="seeds the samples (default 0)")
    for p, folder in ((run, "NAME"), (demo, "demo")):
        p.add_argument("--backend", choices=B.BACKENDS, default=None,
                       help="array library (default: numpy, or MINI_FLOWS_BACKEND)")
        p.add_argument("--seed", type=int, default=0, help="seeds data, initialisation and noise (default 0)")
        p.add_argument("--threads", type=int, default=None,
                       help="BLAS threads (default: 1, or the count OPENBLAS_NUM_THREADS names)")
        p.add_argument("--out", default=None,
                       help=f"folder for results.json and figures (default: mini-flows-results/{folder})")
    return parser


def _list() -> None:
    print(_experiment_list())


def _prepare_out(out: Path, name: str) -> Path:
    """Create --out and check it is writable (with a temporary file of a name of its own), and
    that any results it holds are experiment ``name``'s, before any work starts."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {str(out)!r} is a file; name a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".mini-flows-write-test-"):
            pass
    except OSError as err:
        raise CommandError(f"cannot write to --out {str(out)!r}: {err.strerror or err}") from err
    for path in (out / RESULTS, out / PREVIOUS):
        foreign = _foreign_results(path, name)
        if foreign:
            raise CommandError(f"--out {str(out)!r} holds {foreign}; name another folder for {name!r} (a run "
                               "replaces only its own experiment's results)")
    return out


def _foreign_results(path: Path, name: str) -> str | None:
    """What ``path`` holds where it is not experiment ``name``'s results: another experiment's
    results, or a file that mini-flows did not write; None where there is no such file or it is
    ``name``'s."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    owner = record.get("experiment") if isinstance(record, dict) else None
    if not isinstance(owner, str):
        return f"a {path.name} that mini-flows did not write"
    return None if owner == name else f"the results of {owner!r} ({path.name})"


def _check_data(name: str, data: str) -> None:
    """--data names a file that exists and can be read (music: or is "chorales"); for the text
    experiments, one that is UTF-8 text throughout."""
    if name == "music" and data == CHORALES:
        return
    path = Path(data)
    if not path.exists():
        raise CommandError(f"--data {data!r}: no such file")
    if path.is_dir():
        raise CommandError(f"--data {data!r} is a folder; name a file")
    try:
        if name in TEXT_EXPERIMENTS:
            check_text(path)
        else:
            with open(path, "rb") as file:
                file.read(1)
    except OSError as err:
        raise CommandError(f"cannot read --data {data!r}: {err.strerror or err}") from err
    except ValueError as err:
        raise CommandError(f"--data: {err}") from err


def _check_args(args: argparse.Namespace) -> None:
    if getattr(args, "out", None) == "":
        raise CommandError("--out is empty; name a folder, or leave --out out for the default")
    if args.seed < 0:
        raise CommandError(f"--seed must be an integer >= 0, got {args.seed}")
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be an integer >= 1, got {args.threads}")
        running = {os.environ.get(variable) for variable in BLAS_THREAD_VARIABLES}
        if running != {str(args.threads)}:
            raise CommandError(f"--threads {args.threads} comes too late: NumPy is already loaded with "
                               f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; pass it on the "
                               "command line that starts the process")
    if getattr(args, "steps", None) is not None and not 1 <= args.steps <= MAX_STEPS:
        raise CommandError(f"--steps must be an integer from 1 to {MAX_STEPS:,}, got {args.steps}")
    if getattr(args, "name", None) is not None:
        if args.name not in EXPERIMENTS:
            raise CommandError(f"unknown experiment {args.name!r}; choose from {', '.join(EXPERIMENTS)}")
        if args.data is not None and args.name not in DATA_EXPERIMENTS:
            raise CommandError(f"--data applies to {', '.join(DATA_EXPERIMENTS[:-1])} and {DATA_EXPERIMENTS[-1]} only, "
                               f"not {args.name!r}")
        if args.data is not None:
            _check_data(args.name, args.data)


def _execute(name: str, settings: Settings, command: str) -> Report:
    """Run one experiment on the current backend; print its table and notes, write results.json;
    the experiment's report."""
    experiment = EXPERIMENTS[name]
    settings.say(f"== {name} ({experiment.source}): {experiment.summary}")
    if settings.steps is not None and not experiment.trains:
        settings.say(f"   {name} trains nothing: --steps is ignored")
    settings.say(f"   backend {B.get_backend()}, seed {settings.seed}"
                 + (f", {settings.steps} steps" if settings.steps else "") + (", quick" if settings.quick else ""))
    results, previous = settings.out / RESULTS, settings.out / PREVIOUS
    models, previous_models = settings.out / FOLDER, settings.out / f"{FOLDER}.previous"
    if results.exists():  # else a run that was killed may have left the last results at PREVIOUS already
        os.replace(results, previous)
        if models.exists():
            shutil.rmtree(previous_models, ignore_errors=True)
            os.replace(models, previous_models)
    if previous.exists():
        settings.say(f"   moved the previous run's results.json (and models/) aside to {previous.name} until this run "
                     "writes its own")
    try:
        start = time.perf_counter()
        report = experiment.load()(settings)
        seconds = time.perf_counter() - start
        print()
        print(report.render())
        write_results(results, name, report, settings, B.get_backend(), seconds, command)
    except BaseException:
        if previous.exists():
            if previous_models.exists():
                shutil.rmtree(models, ignore_errors=True)
                os.replace(previous_models, models)
            os.replace(previous, results)
            settings.say("   put the previous run's results.json (and models/) back: this run stopped before writing "
                         "its own")
        raise
    if previous.exists():
        previous.unlink()
    shutil.rmtree(previous_models, ignore_errors=True)
    failures = write_figures(report, settings.out)  # after results.json: a figure that fails costs nothing
    for failure in failures:
        print(f"mini-flows: warning: {failure}; the table and results.json are complete", file=sys.stderr)
    if failures:  # results.json lists the figures actually written, and says why the others are not
        try:
            write_results(results, name, report, settings, B.get_backend(), seconds, command)
        except OSError as err:
            print(f"mini-flows: warning: could not update {results} ({err.strerror or err}); it still lists the "
                  "figures above", file=sys.stderr)
    written = ", ".join(["results.json", *report.figures, *([f"{len(settings.models)} models ({FOLDER}/)"]
                                                            if settings.models else [])])
    print(f"\n{name}: {seconds:.1f} s; wrote {written} to {settings.out}", flush=True)
    return report


def _demo(args: argparse.Namespace, root: Path) -> None:
    start, figures = time.perf_counter(), 0
    folders = {name: _prepare_out(root / name, name) for name, _, _ in DEMO}  # every part's, before any runs
    for name, steps, what in DEMO:
        print(f"\n### {what}\n", flush=True)
        settings = Settings(out=folders[name], seed=args.seed, steps=steps)
        report = _execute(name, settings,
                          f"mini-flows run {name} --seed {args.seed}" + (f" --steps {steps}" if steps else ""))
        figures += len(report.figures)
    written = f"results and {figures} figure{'s' * (figures != 1)}" if figures else \
        "results, no figures (see the notes above)"
    print(f"\ndemo: {time.perf_counter() - start:.0f} s; {written} under {root}")


def _sample(args: argparse.Namespace) -> None:
    """Print ``args.n`` samples of each model the run in ``args.folder`` kept (or of ``args.model``),
    one a line, decoded; a line "== LABEL" before each model's where several are printed."""
    folder, path = Path(args.folder), Path(args.folder) / "results.json"
    if not 1 <= args.n <= MAX_SAMPLES:
        raise CommandError(f"-n must be an integer from 1 to {MAX_SAMPLES:,}, got {args.n}")
    if args.seed < 0:
        raise CommandError(f"--seed must be an integer >= 0, got {args.seed}")
    if not folder.is_dir():
        raise CommandError(f"{str(folder)!r} is not a folder; name the --out folder of a finished mini-flows run")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CommandError(f"no results.json in {str(folder)!r}; name the --out folder of a finished mini-flows "
                           "run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CommandError(f"cannot read {path}: {err}") from None
    if not isinstance(record, dict):
        raise CommandError(f"{path} is not a mini-flows results.json")
    if "models" not in record:
        raise CommandError(f"{path} lists no models: it was written before runs kept their models; run "
                           f"'mini-flows run {record.get('experiment', 'NAME')}' again")
    models = record["models"]
    if not isinstance(models, list) or not all(isinstance(e, dict) and {"label", "file", "class"} <= e.keys()
                                               for e in models):
        raise CommandError(f"{path}: its \"models\" list is not one mini-flows wrote (label, file, class each)")
    if not models:
        raise CommandError(f"the {record.get('experiment')} run in {str(folder)!r} kept no model (it trains none, or "
                           "its models cannot be rebuilt yet: see mini_flows.experiments.saved)")
    labels = [entry["label"] for entry in models]
    if args.model is not None:
        if args.model not in labels:
            raise CommandError(f"no model {args.model!r} in {path}; its models: {', '.join(map(repr, labels))}")
        models = [models[labels.index(args.model)]]
    for entry in models:
        model, params = load_model(folder, entry)
        if len(models) > 1:
            print(f"== {entry['label']}")
        for drawn in draw(model, params, args.n, args.seed):
            print(decode(drawn, entry.get("decoder")), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` (default ``sys.argv[1:]``), run, return the exit status. Output
    into a pipe that closes early (``mini-flows list | head -2``) ends the command quietly, with
    status 1, as Python's documentation of SIGPIPE recommends."""
    try:
        status = _command(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 1
    return status


def _command(argv: list[str]) -> int:
    """Run the command ``argv``; the exit status."""
    if not argv:
        print(_parser().format_help(), end="", file=sys.stderr)
        return 2
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            _list()
            return 0
        if args.command == "sample":
            _sample(args)
            return 0
        _check_args(args)
        default = Path("mini-flows-results") / (args.name if args.command == "run" else "demo")
        with B.use_backend(args.backend or B.get_backend()):
            if args.command == "demo":
                _demo(args, Path(args.out) if args.out else default)
            else:
                out = _prepare_out(Path(args.out) if args.out else default, args.name)
                settings = Settings(out=out, seed=args.seed, steps=args.steps, quick=args.quick, data=args.data,
                                    spread=None if args.plain_straight_through else SPREAD)
                _execute(args.name, settings, "mini-flows " + shlex.join(argv))
    except CommandError as err:
        print(f"mini-flows: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # main's: the reader went away, nothing to report
    except (B.BackendUnavailableError, ValueError, OSError, ModuleNotFoundError) as err:
        print(f"mini-flows: error: {err}".splitlines()[0], file=sys.stderr)
        return 1
    except MemoryError as err:  # NumPy's, or CuPy's OutOfMemoryError on a GPU, whose memory is not estimated
        print(f"mini-flows: error: out of memory: {err}".splitlines()[0], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mini-flows: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
