"""benchmarks/gpu_step.py runs anywhere: without CuPy or a GPU it times NumPy alone and says why
the CuPy column is empty (benchmarks/gpu.sh runs it at batch 4096 on a GPU)."""

from __future__ import annotations

import importlib.util
import pathlib

from mini_flows import backend as B

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_step.py"


def test_gpu_step_prints_a_row_per_model_with_or_without_cupy(capsys):
    before = B.get_backend()
    spec = importlib.util.spec_from_file_location("gpu_step", SCRIPT)
    gpu_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_step)
    gpu_step.main(["--batch", "4", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.startswith(("bipartite", "latent"))]
    assert [row[0] for row in rows] == ["bipartite", "latent"] and all(float(row[-3]) > 0 for row in rows)
    missing = B.unavailable("cupy")
    if missing:
        assert lines[-1] == f"- CuPy column empty: CuPy is unavailable here ({missing})"
        assert all(row[-2:] == ["-", "-"] for row in rows)
    else:
        assert all(row[-1].endswith("x") for row in rows)
    assert B.get_backend() == before  # the benchmark restores the backend it found
