"""Every experiment runs end to end with --quick through the command, in-process, and writes a
valid results.json: strict JSON (no NaN), the table's shape, the settings it ran with; its run
clock planned exactly the training steps it took (so the run's time left is right); an experiment
that trains discrete flows shows their diagnostics in its progress lines and stores them."""

from __future__ import annotations

import json
import math
import shlex

import pytest

from mini_flows import backend as B
from mini_flows.cli import main
from mini_flows.discrete.flows import SPREAD
from mini_flows.experiments import EXPERIMENTS
from mini_flows.train import RunClock

DISCRETE_FLOWS = {"xor": 1, "mog2d": 1, "fullrank": 8, "addition": 4, "potts": 8, "potts-nonequilibrium": 8,
                  "ising": 5, "ising-nonequilibrium": 5, "charflows": 6, "charlm": 1}
"""experiment -> how many trained flow models its results.json reports diagnostics for."""


def diagnostics_in(results) -> list[dict]:
    """Every "diagnostics_report" in a results tree: the dicts with "final" and "warnings"."""
    if isinstance(results, dict):
        if set(results) == {"final", "warnings"}:
            return [results]
        return [d for value in results.values() for d in diagnostics_in(value)]
    return [d for value in results for d in diagnostics_in(value)] if isinstance(results, list) else []


def strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"results.json holds {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_run_writes_a_valid_results_json(name, tmp_path, capsys, monkeypatch):
    clocks = []
    start_clock = RunClock.__init__
    monkeypatch.setattr(RunClock, "__init__", lambda self: (clocks.append(self), start_clock(self))[1])
    argv = ["run", name, "--quick", "--out", str(tmp_path), "--seed", "3"]
    assert main(argv) == 0
    assert len(clocks) == 1 and clocks[0].done == clocks[0].total  # it planned exactly the steps it took
    out = capsys.readouterr().out
    record = strict_json((tmp_path / "results.json").read_text())
    assert record["experiment"] == name
    assert record["command"] == "mini-flows " + shlex.join(argv)
    steps = record["settings"].pop("steps")
    assert record["settings"] == {"seed": 3, "steps_given": None, "quick": True, "data": None, "spread": SPREAD,
                                  "backend": B.get_backend()}
    trains = EXPERIMENTS[name].trains
    assert (isinstance(steps, int) and steps > 0) or (trains and isinstance(steps, list)) or (steps is None and not trains)
    assert record["seconds"] >= 0
    table = record["table"]
    assert table["title"] in out and table["rows"]
    for row in table["rows"]:
        assert isinstance(row[0], str) and row[0] in out
        assert len(row) == 1 + len(table["columns"])
        for c in row[1:]:
            ours = c["ours"] if isinstance(c, dict) else c
            assert ours is None or isinstance(ours, str) or math.isfinite(ours)
    for figure in record["figures"]:
        assert (tmp_path / figure).is_file()
    assert f"{name}: " in out and "wrote results.json" in out
    reports = diagnostics_in(record["results"])
    assert len(reports) == DISCRETE_FLOWS.get(name, 0)
    assert ("grad/start" in out and "margin/tau" in out and "moved" in out) == (name in DISCRETE_FLOWS)
    for report in reports:
        assert report["final"] and isinstance(report["warnings"], list)
        for numbers in report["final"].values():
            assert set(numbers) == {"grad", "grad_ratio", "margin_median", "margin_min", "moved", "varied"}


def test_steps_reach_the_experiment(tmp_path, capsys):
    assert main(["run", "xor", "--steps", "7", "--out", str(tmp_path)]) == 0
    assert "step     7/7" in capsys.readouterr().out
    assert strict_json((tmp_path / "results.json").read_text())["results"]["steps"] == 7


def test_the_plain_straight_through_flag_reaches_the_flows(tmp_path, monkeypatch):
    """--plain-straight-through: the flow the experiment trains has spread None (its hand-set flow
    is never trained), and results.json says so."""
    from mini_flows.discrete import flows

    spreads = []
    start_flow = flows.DiscreteFlow.__init__
    monkeypatch.setattr(flows.DiscreteFlow, "__init__",
                        lambda self, *args, **kwargs: (start_flow(self, *args, **kwargs), spreads.append(self.spread)))
    for flag, expected in (([], SPREAD), (["--plain-straight-through"], None)):
        spreads.clear()
        assert main(["run", "xor", "--quick", "--out", str(tmp_path), *flag]) == 0
        assert expected in spreads and set(spreads) <= {SPREAD, expected}
        assert strict_json((tmp_path / "results.json").read_text())["settings"]["spread"] == expected


@pytest.mark.parametrize("name", ["xor", "mog2d", "fullrank", "addition"])
def test_the_discrete_experiments_tell_their_flows_the_fraction_of_training_done(name, tmp_path, monkeypatch):
    """They train through ``with_progress``: the straight-through bound sees step / steps at every
    training step (and no progress when the trained model is evaluated)."""
    from mini_flows.discrete import flows

    seen = []
    schedule = flows.scheduled_spread
    monkeypatch.setattr(flows, "scheduled_spread",
                        lambda spread, progress: (seen.append(progress), schedule(spread, progress))[1])
    assert main(["run", name, "--quick", "--steps", "4", "--out", str(tmp_path)]) == 0
    assert {p for p in seen if p is not None} == {0.0, 0.25, 0.5, 0.75}
