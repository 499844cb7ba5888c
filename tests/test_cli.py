"""The ``mini-flows`` command: list, run, demo, ``python -m mini_flows``, and one-line errors with
a non-zero exit status for bad arguments."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import mini_flows
from mini_flows import backend as B
from mini_flows import cli
from mini_flows.cli import main
from mini_flows.data.chorales import cache_path
from mini_flows.process import BLAS_THREAD_VARIABLES
from mini_flows.experiments import EXPERIMENTS


def one_line_error(capsys, status, argv, *fragments):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.startswith("mini-flows: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err
    return err


def test_list_names_every_experiment_on_one_line(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(EXPERIMENTS)
    assert {"xor", "mog2d", "fullrank", "addition", "potts", "potts-nonequilibrium", "ising", "ising-nonequilibrium",
            "nlsq1d", "nlsq2d", "charlm", "charflows", "music", "timing"} == set(EXPERIMENTS)


def test_python_dash_m_runs_the_same_command():
    def command(*argv):
        return subprocess.run([sys.executable, "-m", "mini_flows", *argv], capture_output=True, text=True, check=False)

    done = command("list")
    assert done.returncode == 0 and done.stdout.split()[0] == "xor"
    assert len(done.stdout.splitlines()) == len(EXPERIMENTS)
    done = command("run", "nope")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "unknown experiment 'nope'" in done.stderr


def test_unknown_experiment(capsys, tmp_path):
    one_line_error(capsys, 2, ["run", "nope", "--out", str(tmp_path)], "unknown experiment 'nope'", "xor, mog2d")


@pytest.mark.parametrize("steps", ["-3", "0", "10000001", "2147483648", str(10**30)])
def test_steps_must_lie_in_range(capsys, tmp_path, steps):
    one_line_error(capsys, 2, ["run", "xor", "--quick", "--steps", steps, "--out", str(tmp_path)],
                   f"--steps must be an integer from 1 to 10,000,000, got {steps}")


@pytest.mark.parametrize("argv,fragment", [
    (["run", "xor", "--seed", "-1"], "--seed must be an integer >= 0"),
    (["run", "xor", "--steps", "many"], "invalid int value: 'many'"),
    (["run", "xor", "--backend", "torch"], "invalid choice: 'torch'"),
    (["run"], "the following arguments are required: name"),
    (["fly"], "invalid choice: 'fly'"),
    (["run", "xor", "--data", "x.txt"], "--data applies to charlm, charflows and music only"),
])
def test_bad_arguments(capsys, argv, fragment):
    one_line_error(capsys, 2, argv, fragment)


def test_unwritable_out(capsys, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    one_line_error(capsys, 2, ["run", "xor", "--quick", "--out", str(blocker / "results")], "cannot write to --out")
    assert not (blocker.parent / "results").exists()


def test_cupy_without_a_gpu_fails_at_once_with_the_backend_error(capsys, tmp_path):
    try:
        with B.use_backend("cupy"):
            pytest.skip("CuPy and a GPU are present: --backend cupy runs here")
    except B.BackendUnavailableError as err:
        reason = str(err)
    out, before = tmp_path / "never made", B.get_backend()
    err = one_line_error(capsys, 1, ["run", "xor", "--backend", "cupy", "--out", str(out)], "backend 'cupy'")
    assert reason.splitlines()[0] in err
    assert not out.exists() and B.get_backend() == before


def test_a_mistyped_data_file_is_a_bad_argument_and_keeps_the_previous_results(capsys, tmp_path):
    """Status 2, as for every bad argument (it was 1), and before anything: the previous run's
    results.json and figure are left as they were (they were deleted)."""
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(["the cat sat", "a dog ran far", "cats and dogs", "the end is near"] * 6))
    out = tmp_path / "out"
    assert main(["run", "charlm", "--quick", "--data", str(text), "--out", str(out)]) == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    capsys.readouterr()
    missing = str(tmp_path / "corpus.tx")
    one_line_error(capsys, 2, ["run", "charlm", "--quick", "--data", missing, "--out", str(out)],
                   f"--data {missing!r}: no such file")
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("name", ["charlm", "charflows", "music"])
def test_a_data_path_that_cannot_be_read_is_a_bad_argument(capsys, tmp_path, monkeypatch, name):
    out = tmp_path / "out"
    one_line_error(capsys, 2, ["run", name, "--data", str(tmp_path), "--out", str(out)], "is a folder; name a file")
    locked = tmp_path / "locked.txt"
    locked.write_text("text\n")
    opened = open

    def permission_denied(file, *args, **kwargs):  # what open() says to a user without read permission
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return opened(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", permission_denied)
    one_line_error(capsys, 2, ["run", name, "--data", str(locked), "--out", str(out)],
                   f"cannot read --data {str(locked)!r}: Permission denied")
    assert not out.exists()


@pytest.mark.parametrize("name", ["charlm", "charflows"])
def test_a_binary_data_file_is_named_with_where_it_fails_to_decode(capsys, tmp_path, name):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"header\n\x89PNG\x00\xff" * 100)
    err = one_line_error(capsys, 2, ["run", name, "--quick", "--data", str(binary), "--out", str(tmp_path / "out")],
                         "model.bin is not valid utf-8: line 2, byte 1 (0x89); convert it to utf-8")
    assert "encoding=" not in err  # the command has no such option


def test_charlm_on_a_text_file(tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(["the cat sat", "a dog ran far", "cats and dogs", "the end is near", "so it goes"] * 6))
    assert main(["run", "charlm", "--quick", "--data", str(text), "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["settings"]["data"] == str(text) and record["results"]["source_nll"] is None
    assert "corpus.txt: 24 training and 3 test sentences" in capsys.readouterr().out


def test_music_on_a_pickle(tmp_path):
    piece = [{60, 64, 67}, {60, 64, 67}, {62, 65}, set(), {55, 59, 62}]
    path = tmp_path / "tiny.pickle"
    with open(path, "wb") as file:
        pickle.dump({"train": [piece] * 6, "valid": [piece], "test": [piece[:3], piece]}, file)
    assert main(["run", "music", "--quick", "--data", str(path), "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert [row[0] for row in record["table"]["rows"]] == ["LSTM", "AF / AF", "AF / SCF", "IAF / SCF"]
    # a pickle could hold any of the paper's data sets: its four columns side by side, none in parentheses
    assert record["table"]["columns"][-1] == "paper: Nottingham / Piano-midi.de / MuseData / JSB Chorales"
    assert record["table"]["rows"][0][-1] == "3.43 / 7.77 / 7.23 / 8.17"
    assert all(row[1]["paper"] is None for row in record["table"]["rows"])


def test_music_on_the_chorales_reads_their_cache_and_compares_with_jsb(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    piece = [{55, 59, 62, 67}, {55, 59, 62, 67}, {52, 60, 64, 67}, set(), {50, 54, 62, 69}]
    cache_path().parent.mkdir(parents=True)
    with open(cache_path(), "wb") as file:  # a tiny stand-in for the cached corpus, so nothing is built
        pickle.dump({"train": [piece] * 3, "valid": [piece[:2]], "test": [piece, piece[:4]]}, file)
    assert main(["run", "music", "--quick", "--data", "chorales", "--out", str(tmp_path / "out")]) == 0
    table = json.loads((tmp_path / "out" / "results.json").read_text())["table"]
    assert table["columns"] == ["NLL", "reconst.", "KL"]
    assert [row[1]["paper"] for row in table["rows"]] == [8.17, 6.53, 6.64, 6.59]
    out = capsys.readouterr().out
    assert "(paper's JSB Chorales value in parentheses)" in out
    assert f"Bach chorales from music21's corpus, four voices every quarter note, split 60%/20%/20% by seed 0 " \
           f"(cached in {cache_path()}): 3 training, 1 validation (unused) and 2 test pieces, 4.3 steps on average " \
           f"(2 to 5)" in out


def test_music_on_the_chorales_without_music21_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "music21", None)
    argv = ["run", "music", "--quick", "--data", "chorales", "--out", str(tmp_path / "out")]
    one_line_error(capsys, 1, argv, "music21", "pip install 'mini-flows[music]'")


@pytest.mark.parametrize("failure,status", [(KeyboardInterrupt, 130), (ValueError("a file it refuses"), 1)])
def test_a_run_that_stops_before_writing_puts_the_previous_results_back(tmp_path, capsys, monkeypatch, failure,
                                                                          status):
    """The previous results.json and its models are moved aside while the run works (so that none
    looks current meanwhile) and put back, unchanged, when the run stops before writing its own."""
    assert main(["run", "xor", "--quick", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "results.json").read_bytes()
    models = {path.name: path.read_bytes() for path in (tmp_path / "models").iterdir()}
    seen = []

    def stopped(settings):
        seen.append(sorted(path.name for path in settings.out.iterdir()))
        raise failure

    monkeypatch.setattr("mini_flows.experiments.xor.run", stopped)
    capsys.readouterr()
    assert main(["run", "xor", "--quick", "--out", str(tmp_path)]) == status
    assert "results.json" not in seen[0] and "results.previous.json" in seen[0]
    assert "models" not in seen[0] and "models.previous" in seen[0]
    assert (tmp_path / "results.json").read_bytes() == before and not (tmp_path / "results.previous.json").exists()
    assert {path.name: path.read_bytes() for path in (tmp_path / "models").iterdir()} == models
    assert not (tmp_path / "models.previous").exists()
    out = capsys.readouterr().out
    assert "moved the previous run's results.json (and models/) aside" in out
    assert "put the previous run's results.json (and models/) back" in out


def test_the_results_a_killed_run_left_aside_come_back_or_are_replaced(tmp_path, monkeypatch):
    """A run killed outright (no chance to put anything back) leaves results.previous.json: the next
    run puts it back if it too stops early, and replaces it once it writes its own results."""
    assert main(["run", "xor", "--quick", "--out", str(tmp_path)]) == 0
    (tmp_path / "results.json").rename(tmp_path / "results.previous.json")
    before = (tmp_path / "results.previous.json").read_bytes()
    with monkeypatch.context() as patched, pytest.raises(ZeroDivisionError):  # even a crash puts them back
        patched.setattr("mini_flows.experiments.xor.run", lambda settings: 1 / 0)
        main(["run", "xor", "--quick", "--out", str(tmp_path)])
    assert (tmp_path / "results.json").read_bytes() == before
    (tmp_path / "results.json").rename(tmp_path / "results.previous.json")
    assert main(["run", "xor", "--quick", "--out", str(tmp_path), "--seed", "5"]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["seed"] == 5
    assert not (tmp_path / "results.previous.json").exists()


@pytest.mark.parametrize("held", ["results.json", "results.previous.json"])
def test_an_out_folder_with_another_experiments_results_is_refused(tmp_path, capsys, held):
    assert main(["run", "nlsq1d", "--out", str(tmp_path)]) == 0
    (tmp_path / "results.json").rename(tmp_path / held)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    capsys.readouterr()
    one_line_error(capsys, 2, ["run", "xor", "--quick", "--out", str(tmp_path)],
                   f"holds the results of 'nlsq1d' ({held}); name another folder for 'xor'")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text("my own notes")
    one_line_error(capsys, 2, ["run", "xor", "--quick", "--out", str(tmp_path / "other")],
                   "holds a results.json that mini-flows did not write; name another folder for 'xor'")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_the_write_probe_leaves_a_file_of_its_old_name_alone(tmp_path):
    (tmp_path / ".mini-flows-write-test").write_text("a file of the user's")
    assert main(["run", "nlsq1d", "--out", str(tmp_path)]) == 0
    assert (tmp_path / ".mini-flows-write-test").read_text() == "a file of the user's"
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".mini-flows-write-test-")]


def test_steps_are_ignored_where_nothing_trains(tmp_path, capsys):
    assert main(["run", "nlsq1d", "--steps", "5", "--out", str(tmp_path)]) == 0
    assert "nlsq1d trains nothing: --steps is ignored" in capsys.readouterr().out


def test_demo_runs_each_part_into_its_own_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "DEMO", [("xor", 3, "the XOR table"), ("nlsq1d", None, "NLSq multimodality")])
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "### the XOR table" in out and "### NLSq multimodality" in out and "demo: " in out
    for name in ("xor", "nlsq1d"):
        assert json.loads((tmp_path / name / "results.json").read_text())["experiment"] == name


def test_demo_covers_both_papers():
    assert [name for name, _, _ in cli.DEMO] == ["xor", "mog2d", "nlsq1d", "charlm"]


def test_no_arguments_prints_the_usage_and_the_experiments(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mini-flows") and all(name in err for name in EXPERIMENTS)


def test_help_lists_the_experiments_and_each_command_its_own_default_folder(capsys):
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert all(name in out for name in EXPERIMENTS)
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "mini-flows-results/demo" in capsys.readouterr().out.replace("-\n", "-").replace("\n", " ").replace("  ", "")


def test_examples_write_their_figures_under_the_ignored_results_folder():
    import ast
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.glob("examples/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value == "--out" for a in node.args):
                default = next(k.value.value for k in node.keywords if k.arg == "default")
                assert default.startswith("mini-flows-results/"), f"{path.name} writes {default} into the checkout"


def test_the_command_runs_blas_on_one_thread_unless_the_environment_says_otherwise():
    code = "import os, mini_flows.cli; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_NUM_THREADS": "2"}, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["2", "1"]
    code = "import mini_flows, sys; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # importing the package loads no array library


def test_a_checkout_that_was_never_installed_records_its_own_version(tmp_path, monkeypatch):
    """``python -m mini_flows`` from a checkout without package metadata: the run finishes and
    results.json holds the package's own version."""
    def not_installed(distribution):
        raise metadata.PackageNotFoundError(distribution)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert main(["run", "nlsq1d", "--out", str(tmp_path)]) == 0
    provenance = json.loads((tmp_path / "results.json").read_text())["provenance"]
    assert provenance["mini_flows"] == mini_flows.__version__ and provenance["numpy"] is None


def test_the_package_version_is_pyprojects():
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE).group(1) == mini_flows.__version__


def test_a_figure_that_fails_is_a_warning_after_the_table_and_results(tmp_path, capsys, monkeypatch):
    """A full disk while the figure is written: the table is printed, results.json written (without
    the figure, with a note), the previous run's figure removed, one warning line, exit status 0."""
    plt = pytest.importorskip("matplotlib.pyplot", reason="the figure is drawn only where matplotlib is installed")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plt, "savefig", disk_full)
    (tmp_path / "xor.png").write_bytes(b"the previous run's figure")
    assert main(["run", "xor", "--quick", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "wrote results.json, 2 models (models/) to" in captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("mini-flows: warning: could not write the figure "
                                                                      "xor.png (No space left on device)")
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["table"]["title"] in captured.out  # the table was printed
    assert record["figures"] == [] and any("could not write the figure xor.png" in n for n in record["notes"])
    assert not (tmp_path / "xor.png").exists()


def run_command(*argv, env=None, **kwargs):
    """``python -m mini_flows ARGV`` in a fresh process (BLAS threads are fixed when NumPy loads)."""
    environment = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    return subprocess.run([sys.executable, "-m", "mini_flows", *argv], env={**environment, **(env or {})},
                          capture_output=True, text=True, check=False, **kwargs)


@pytest.mark.parametrize("flags,threads", [(["--threads=+2"], 2), (["--threads", "1", "--threads", "3"], 3),
                                           (["--thr", "2"], 2), (["--threads= 4"], 4)])
def test_threads_are_read_before_numpy_as_the_parser_reads_them(tmp_path, flags, threads):
    assert cli._threads_flag(["run", "nlsq1d", *flags]) == threads
    done = run_command("run", "nlsq1d", *flags, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr  # it said "comes too late"
    assert "too late" not in done.stderr


@pytest.mark.parametrize("flags", [["--threads"], ["--threads", "x"], ["--threads=0"], ["--seed", "1"]])
def test_threads_flags_the_parser_refuses_or_lacks_leave_the_default(flags):
    assert cli._threads_flag(["run", "xor", *flags]) is None


def test_an_empty_backend_variable_counts_as_unset(tmp_path):
    done = run_command("run", "nlsq1d", "--out", str(tmp_path), env={"MINI_FLOWS_BACKEND": ""})
    assert done.returncode == 0, done.stderr  # it said "unknown backend ''"
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["backend"] == "numpy"


def test_a_pipe_closed_early_ends_the_command_quietly():
    """``mini-flows list | head -2``: the reader leaves before the list is written."""
    process = subprocess.Popen([sys.executable, "-m", "mini_flows", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    assert process.stderr.read() == "" and process.wait(timeout=60) == 1
    process.stderr.close()
