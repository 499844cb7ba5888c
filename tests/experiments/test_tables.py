"""The experiments' plumbing: tables with the paper's numbers, results.json, settings, figures
and the enumeration the discrete experiments score with."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.data import dirichlet_table, table_entropy
from mini_flows.discrete.flows import SPREAD
from mini_flows.experiments.evaluation import all_sequences
from mini_flows.experiments.figures import no_plot_note, plot, save_figure, write_figures
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell, render_cell, write_results
from mini_flows.machine import describe
from mini_flows.experiments.fullrank import cross_entropy

PACKAGE = Path(B.__file__).parent


def test_cells_print_ours_then_the_papers_value():
    assert render_cell(cell(0.91234, 0.9)) == "0.912 (0.9)"
    assert render_cell(cell(7.0, 16.0, digits=1)) == "7.0 (16.0)"
    assert render_cell(cell(None, 3.43)) == "- (3.43)"
    assert render_cell(cell("3 modes", "multimodal")) == "3 modes (multimodal)"
    assert render_cell(cell(5)) == "5"
    assert render_cell("plain") == "plain"


def test_table_renders_aligned_columns_and_a_note_only_when_the_paper_is_quoted():
    table = Table("Title", ["A", "B"], [["row one", cell(1.0, 2.0), cell(3.0)], ["r2", cell(10.5), "x"]])
    lines = table.render().splitlines()
    assert lines[0] == "Title"
    assert len({len(line) for line in lines[1:3]}) == 1  # header and first row align
    assert lines[2].startswith("row one") and lines[2].endswith("3.000")
    assert lines[-1] == "(paper's value in parentheses)"
    assert "(paper" not in Table("T", ["A"], [["r", cell(1.0)]]).render()


def test_results_json_is_strict_and_complete(tmp_path):
    report = Report(Table("T", ["A"], [["r", cell(math.nan, 1.5)], ["s", cell(math.inf)]]), ["a note"],
                    results={"x": [1.0, math.nan, {"y": -math.inf}]})
    settings = Settings(out=tmp_path, seed=4, quick=True)
    settings.pick_steps(100, 9)
    write_results(tmp_path / "results.json", "demo", report, settings, "numpy", 1.234, "mini-flows run demo")
    record = json.loads((tmp_path / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert record["table"]["rows"] == [["r", {"ours": "nan", "paper": 1.5, "digits": 3}],
                                       ["s", {"ours": "inf", "paper": None, "digits": 3}]]
    assert Table.from_json(record["table"]).render() == report.table.render()  # as printed, "nan" included
    assert record["results"] == {"x": [1.0, None, {"y": None}]}
    assert record["settings"] == {"seed": 4, "steps": 9, "steps_given": None, "quick": True, "data": None,
                                  "spread": SPREAD, "backend": "numpy"}
    assert record["seconds"] == 1.23 and record["notes"] == ["a note"] and record["command"] == "mini-flows run demo"
    versions = record["provenance"]
    assert versions["mini_flows"] and versions["numpy"] == np.__version__ and versions["python"].count(".") == 2
    assert versions["git_revision"] is None or len(versions["git_revision"]) == 40
    assert versions["finished_utc"].endswith("+00:00")
    assert versions["machine"] == {**describe(), "blas": versions["machine"]["blas"]}  # the threads may differ


def test_results_json_lists_every_step_count_an_experiment_used(tmp_path):
    settings = Settings(out=tmp_path)
    settings.pick_steps(300, 5)
    settings.pick_steps(1000, 5)
    settings.pick_steps(300, 5)
    write_results(tmp_path / "results.json", "demo", Report(Table("T", ["A"], [])), settings, "numpy", 1.0, "c")
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["steps"] == [300, 1000]


def test_a_failed_write_leaves_the_previous_results_whole(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("previous")
    report = Report(Table("T", ["A"], []), results={"bad": object()})
    with pytest.raises(TypeError):
        write_results(path, "demo", report, Settings(out=tmp_path), "numpy", 1.0, "c")
    assert path.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_settings_pick_steps():
    assert Settings(out=None).pick_steps(100, 5) == 100
    assert Settings(out=None, quick=True).pick_steps(100, 5) == 5
    assert Settings(out=None, quick=True, steps=7).pick_steps(100, 5) == 7


def test_figures_are_listed_then_drawn_or_a_note_says_why(tmp_path):
    report = Report(Table("T", [], []))
    settings = Settings(out=tmp_path)
    save_figure(settings, "f.png", lambda plt: plt.plot([0, 1], [1, 0]), report)
    save_figure(settings, "f.png", lambda plt: plt.plot([0, 1], [0, 1]), report)  # the later drawing wins
    if plot(tmp_path / "g.png", lambda plt: plt.plot([0], [0])):
        assert report.figures == ["f.png"] and not (tmp_path / "f.png").exists()  # listed, not yet drawn
        assert write_figures(report, tmp_path) == [] and (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    else:
        assert report.figures == [] and report.notes == [no_plot_note("f.png")]
        assert "pip install 'mini-flows[plot]'" in report.notes[0]


def test_without_matplotlib_a_note_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report = Report(Table("T", [], []))
    save_figure(Settings(out=tmp_path), "f.png", lambda plt: plt.plot([0], [0]), report)
    assert report.figures == [] and report.notes == [no_plot_note("f.png")] and write_figures(report, tmp_path) == []


def test_all_sequences_enumerate_a_table_in_its_own_order():
    table = dirichlet_table(3, 4, seed=1)
    seqs = B.to_numpy(all_sequences(3, 4))
    assert seqs.shape == (64, 3)
    assert np.array_equal(table[tuple(seqs.T)], table.reshape(-1))
    exact_log_prob = lambda tokens: B.asarray(np.log(table[tuple(B.to_numpy(tokens).T)]))  # noqa: E731
    assert math.isclose(cross_entropy(exact_log_prob, table), table_entropy(table), rel_tol=1e-12)


def git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def repository(path: Path) -> str:
    """A new git repository at ``path`` with one commit; its HEAD."""
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    (path / "README").write_text("a project\n")
    git("add", "README", cwd=path)
    git("commit", "-qm", "start", cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def revision_recorded(pythonpath: Path) -> str:
    """The git revision provenance() records for the mini_flows found on ``pythonpath``."""
    code = "from mini_flows.experiments.tables import provenance; print(provenance()['git_revision'])"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(pythonpath)},
                          cwd=pythonpath, capture_output=True, text=True, check=True)  # cwd: not this checkout
    return done.stdout.strip()


def test_the_git_revision_is_recorded_only_for_the_packages_own_checkout(tmp_path):
    copy = shutil.ignore_patterns("__pycache__")
    project = tmp_path / "project"
    repository(project)
    site = project / ".venv" / "site-packages"  # a copy installed inside another project's work tree
    shutil.copytree(PACKAGE, site / "mini_flows", ignore=copy)
    assert revision_recorded(site) == "None"
    checkout = tmp_path / "checkout"  # a checkout of its own: its HEAD
    repository(checkout)
    shutil.copytree(PACKAGE, checkout / "mini_flows", ignore=copy)
    git("add", "mini_flows", cwd=checkout)
    git("commit", "-qm", "the package", cwd=checkout)
    assert revision_recorded(checkout) == git("rev-parse", "HEAD", cwd=checkout)
    vendor = project / "vendor"  # the checkout's package linked into the other work tree: still the checkout's
    vendor.mkdir()
    (vendor / "mini_flows").symlink_to(checkout / "mini_flows")
    assert revision_recorded(vendor) == git("rev-parse", "HEAD", cwd=checkout)
