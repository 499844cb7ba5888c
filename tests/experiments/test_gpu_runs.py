"""``--backend cupy`` end to end: every experiment's quick run succeeds on CuPy and says so in its
results.json. Marked ``gpu``: skipped, with the reason, where CuPy or a GPU is missing (there the
command fails at once with the backend error: tests/test_cli.py)."""

from __future__ import annotations

import json

import pytest

from mini_flows import backend as B
from mini_flows.cli import main
from mini_flows.experiments import EXPERIMENTS

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_run_on_cupy(name, tmp_path, capsys):
    before = B.get_backend()
    assert main(["run", name, "--quick", "--backend", "cupy", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["settings"]["backend"] == "cupy"
    assert record["table"]["rows"] and f"{name}: " in capsys.readouterr().out
    assert B.get_backend() == before  # the command restores the backend it found
