"""The backend: selection, clear errors, seeded generators, checkpoints, and no stray imports."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from mini_flows import backend as B

PACKAGE = pathlib.Path(B.__file__).parent


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'torch'; valid backends are 'numpy', 'cupy'"):
        B.set_backend("torch")


def test_cupy_request_fails_with_install_hint_or_works():
    try:
        with B.use_backend("cupy"):
            assert B.xp().__name__ == "cupy"
    except B.BackendUnavailableError as err:
        assert "mini-flows[cuda12]" in str(err) or "GPU" in str(err)


def test_use_backend_restores_the_previous_backend_after_an_error():
    before = B.get_backend()
    with pytest.raises(ValueError):
        with B.use_backend("numpy"):
            raise ValueError("inside")
    assert B.get_backend() == before


def test_environment_variable_picks_the_default():
    code = "from mini_flows import backend as B; print(B.get_backend())"
    ok = subprocess.run([sys.executable, "-c", code], env={"MINI_FLOWS_BACKEND": "numpy", "PATH": ""}, capture_output=True, text=True)
    assert ok.stdout.strip() == "numpy"
    bad = subprocess.run([sys.executable, "-c", code], env={"MINI_FLOWS_BACKEND": "jax", "PATH": ""}, capture_output=True, text=True)
    assert "unknown backend 'jax'" in bad.stderr


@pytest.mark.autograd
def test_use_autograd_switches_the_array_module():
    import autograd.numpy as anp

    with B.use_autograd():
        assert B.xp() is anp
    assert B.xp() is np


def test_host_rng_is_reproducible_and_rng_follows_the_backend():
    assert np.array_equal(B.host_rng(3).standard_normal(5), B.host_rng(3).standard_normal(5))
    assert isinstance(B.rng(0).standard_normal(2), B.xp().ndarray)


def test_to_numpy_and_asarray_keep_dtype():
    a = B.asarray(np.arange(3, dtype=np.float32))
    assert B.to_numpy(a).dtype == np.float32
    assert B.asarray([1, 2], "float64").dtype == np.float64


def test_npz_round_trip_is_bit_exact(tmp_path):
    rng = B.host_rng(0)
    arrays = {"w": rng.standard_normal((3, 4)), "h": rng.standard_normal(5).astype(np.float32), "n": np.arange(4)}
    B.save_npz(tmp_path / "c.npz", arrays)
    back = B.load_npz(tmp_path / "c.npz")
    assert back.keys() == arrays.keys()
    for name in arrays:
        assert back[name].dtype == arrays[name].dtype and np.array_equal(B.to_numpy(back[name]), arrays[name])


def test_model_code_never_imports_numpy_or_cupy():
    """A NumPy array mixed into CuPy code is how GPU support usually breaks: only backend.py,
    data/ and testing/ (the kit compares host copies of its arrays, and autograd traces NumPy)
    may import an array library."""
    pattern = re.compile(r"^\s*(import|from)\s+(numpy|cupy|cupyx)\b", re.MULTILINE)
    host_side = {"data", "testing"}
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "backend.py" and not host_side & set(path.relative_to(PACKAGE).parts)
        and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_wall_seconds_times_the_call():
    calls = []
    elapsed = B.wall_seconds(lambda: calls.append(1))
    assert calls == [1] and 0 <= elapsed < 1


def test_unavailable_says_why_and_leaves_the_backend_alone():
    before = B.get_backend()
    assert B.unavailable("numpy") is None
    reason = B.unavailable("cupy")
    assert reason is None or "cupy" in reason.lower()
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        B.unavailable("torch")
    assert B.get_backend() == before
