"""``mini-flows sample DIR``: samples of the models a finished run kept, and one-line errors with
exit status 2 for a folder it cannot sample from."""

from __future__ import annotations

import json

import pytest

from mini_flows import cli
from mini_flows.cli import main
from mini_flows.experiments import figures


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    """The folder of a quick xor run (two models: a factorized base, and one flow on it)."""
    out = tmp_path_factory.mktemp("xor")
    assert main(["run", "xor", "--quick", "--out", str(out)]) == 0
    return out


def one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("mini-flows: error: ") and captured.err.count("\n") == 1
    for fragment in fragments:
        assert fragment in captured.err, captured.err
    return captured.err


def test_sample_prints_samples_of_every_model_of_a_run(xor_run, capsys):
    capsys.readouterr()
    assert main(["sample", str(xor_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "== factorized base alone" and lines[6] == "== 1 learnt flow + base" and len(lines) == 12
    for line in lines[1:6] + lines[7:]:
        assert line in ("0 0", "0 1", "1 0", "1 1")


def test_sample_prints_n_samples_of_the_model_named_reproducibly(xor_run, capsys):
    capsys.readouterr()
    argv = ["sample", str(xor_run), "--model", "1 learnt flow + base", "-n", "40", "--seed", "7"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 40 and set(lines) <= {"0 0", "0 1", "1 0", "1 1"} and len(set(lines)) > 1
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(argv[:-1] + ["8"]) == 0
    assert capsys.readouterr().out.splitlines() != lines


def test_sample_names_what_is_wrong_with_its_arguments(xor_run, tmp_path, capsys):
    capsys.readouterr()
    one_line_error(capsys, ["sample", str(tmp_path / "nowhere")], "nowhere' is not a folder")
    one_line_error(capsys, ["sample", str(tmp_path)], "no results.json in", "--out folder of a finished")
    one_line_error(capsys, ["sample", str(xor_run), "--model", "nope"], "no model 'nope'",
                   "its models: 'factorized base alone', '1 learnt flow + base'")
    one_line_error(capsys, ["sample", str(xor_run), "-n", "0"], "-n must be an integer from 1 to")
    one_line_error(capsys, ["sample", str(xor_run), "--seed", "-1"], "--seed must be an integer >= 0")
    one_line_error(capsys, ["sample", str(xor_run), "-n", "many"], "invalid int value: 'many'")


def test_sample_refuses_a_results_json_without_models(xor_run, tmp_path, capsys):
    record = json.loads((xor_run / "results.json").read_text())
    old = {key: value for key, value in record.items() if key != "models"}  # as written before runs kept models
    (tmp_path / "results.json").write_text(json.dumps(old))
    one_line_error(capsys, ["sample", str(tmp_path)], "lists no models", "written before runs kept their models",
                   "'mini-flows run xor' again")
    (tmp_path / "results.json").write_text(json.dumps({**old, "experiment": "addition", "models": []}))
    one_line_error(capsys, ["sample", str(tmp_path)], "the addition run in", "kept no model")
    (tmp_path / "results.json").write_text(json.dumps({**old, "models": [{"label": "x"}]}))
    one_line_error(capsys, ["sample", str(tmp_path)], "models\" list is not one mini-flows wrote")
    (tmp_path / "results.json").write_text("{not json")
    one_line_error(capsys, ["sample", str(tmp_path)], "cannot read", "results.json")


@pytest.mark.parametrize("matplotlib", [True, False])
def test_the_demos_last_line_promises_only_the_figures_it_wrote(matplotlib, tmp_path, capsys, monkeypatch):
    """Issue 26, item 5: without matplotlib (or with a figure skipped) the demo does not end with
    "results and figures"."""
    monkeypatch.setattr(cli, "DEMO", [("xor", 3, "the XOR table"), ("nlsq1d", None, "NLSq multimodality")])
    if not matplotlib:
        monkeypatch.setattr(figures, "plot", lambda path, draw: False)  # as where matplotlib is missing
    assert main(["demo", "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("demo: ") and last.endswith(f"under {tmp_path}")
    if matplotlib:
        assert "; results and 2 figures under" in last
    else:
        assert "; results, no figures (see the notes above) under" in last and "results and" not in last
