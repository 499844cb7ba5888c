"""examples/discretized_mog.py (the paper's Figure 2 at toy scale): the data is what the paper
describes, and a very short run prints both NLLs beside the empirical entropy."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "discretized_mog.py"


def load_example():
    spec = importlib.util.spec_from_file_location("discretized_mog_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_is_the_discretized_truncated_mixture():
    example = load_example()
    tokens = example.sample_mog(4000, np.random.default_rng(0))
    assert tokens.shape == (4000, 2) and tokens.min() >= 0 and tokens.max() < 90
    centres = example.LOW + example.WIDTH * (tokens + 0.5)
    radius = np.hypot(centres[:, 0], centres[:, 1])
    assert abs(np.median(radius) - 2) < 0.05
    angles = np.round(np.arctan2(centres[:, 1], centres[:, 0]) / (2 * math.pi / 8)) % 8
    assert np.allclose(np.bincount(angles.astype(int), minlength=8) / 4000, 1 / 8, atol=0.02)
    p = example.histogram(tokens)
    assert p.shape == (90, 90) and abs(p.sum() - 1) < 1e-12
    assert 0 < example.entropy(p) <= math.log(4000)


def test_short_run_prints_both_nlls(tmp_path, capsys):
    load_example().main(["--steps", "2", "--num-data", "300", "--out", str(tmp_path / "mog.png")])
    out = capsys.readouterr().out
    for line in ("empirical entropy of the data", "factorized base alone", "one bipartite flow + base"):
        assert line in out
    assert "step     2/2" in out
    assert (tmp_path / "mog.png").exists() or "matplotlib is not installed" in out
