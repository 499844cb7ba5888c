"""The strict backend (tests/strict_backend.py) fails where CuPy would, with CuPy's errors, and
computes what NumPy computes everywhere else."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.discrete import build_model
from tests import strict_backend

IMPLICIT = r"^Implicit conversion to a NumPy array is not allowed\. Please use `\.get\(\)` to construct"
UNSUPPORTED = r"^Unsupported type <class 'numpy\.ndarray'>$"


@pytest.fixture
def xp():
    with B.use_backend(strict_backend.NAME):
        yield B.xp()


def test_tests_can_select_it_but_users_are_not_offered_it():
    assert strict_backend.NAME not in B.BACKENDS
    with B.use_backend(strict_backend.NAME):
        assert B.get_backend() == "strict" and B.xp() is strict_backend.module


def test_host_data_goes_in_by_asarray_and_out_by_to_numpy_only(xp):
    host = np.arange(6.0).reshape(2, 3)
    a = B.asarray(host)
    assert isinstance(a, xp.ndarray) and not isinstance(a, np.ndarray) and a.dtype == np.float64
    host[0, 0] = 99.0  # asarray copied, as a transfer to a device does
    assert np.array_equal(B.to_numpy(a), np.arange(6.0).reshape(2, 3))
    for implicit in (lambda: np.asarray(a), lambda: np.testing.assert_array_equal(a, host), lambda: host[a > 2]):
        with pytest.raises(TypeError, match=IMPLICIT):
            implicit()


def test_host_arrays_in_device_arithmetic_fail_as_on_cupy(xp):
    a, host = B.asarray(np.ones(3)), np.ones(3)
    mixes = (lambda: a + host, lambda: host * a, lambda: a < host, lambda: xp.where(a > 0, host, a),
             lambda: xp.concatenate([a, host]), lambda: xp.exp(host))
    for mix in mixes:
        with pytest.raises(TypeError, match=UNSUPPORTED):
            mix()


def test_scalars_mix_freely_and_results_stay_on_the_device(xp):
    a = B.asarray(np.arange(4.0))
    b = 2 * a + 1.5 - np.float64(0.5) ** 2
    assert isinstance(b, xp.ndarray) and isinstance(np.exp(a), xp.ndarray)  # NumPy ufuncs defer to it
    total = a.sum()
    assert isinstance(total, xp.ndarray) and total.shape == ()  # a 0-d array, as CuPy returns
    assert float(total) == 6.0 and int(total) == 6 and bool(total) and total.item() == 6.0 and f"{total:.1f}" == "6.0"
    assert [float(v) for v in a] == [0.0, 1.0, 2.0, 3.0]
    assert np.array_equal(B.to_numpy(xp.linalg.slogdet(xp.eye(2))[1]), 0.0)


def test_indexing_takes_host_indices_as_cupy_does(xp):
    a = B.asarray(np.arange(6.0))
    assert np.array_equal(B.to_numpy(a[np.array([4, 1])]), [4.0, 1.0]) and a[[0, 2]].shape == (2,)
    a[np.array([0, 1])] = np.array([7.0, 8.0])  # written through an index array: copied in
    assert np.array_equal(B.to_numpy(a[:2]), [7.0, 8.0])
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[1:3] = np.zeros(2)


def test_only_what_cupy_has(xp):
    rng = B.rng(0)
    assert isinstance(rng.standard_normal(3), xp.ndarray) and isinstance(rng.random(), xp.ndarray)
    assert np.array_equal(B.to_numpy(B.rng(5).integers(0, 9, size=4)), np.random.default_rng(5).integers(0, 9, size=4))
    for absent in ("normal", "choice", "permutation", "shuffle"):
        assert not hasattr(rng, absent), absent
    assert not hasattr(xp, "put_along_axis") and not hasattr(B.asarray(np.ones(2)), "byteswap")
    with pytest.raises(NotImplementedError, match="maximum.reduce"):
        xp.maximum.reduce(B.asarray(np.ones(3)))
    g = xp.zeros(3)
    xp.add.at(g, np.array([0, 0, 2]), 1.0)
    assert np.array_equal(B.to_numpy(g), [2.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="no implementation found for 'numpy.nanpercentile'"):
        np.nanpercentile(g, 50)  # NumPy routines on device arrays: only those CuPy has


def _bipartite_log_prob_plus_host_zeros() -> np.ndarray:
    """Model code with the classic GPU bug: a constant built with NumPy added to device output."""
    model = build_model("bipartite", 5, 4, num_flows=2, hidden=8, network="mlp")
    log_p = model.log_prob(model.init(B.host_rng(0)), B.asarray(np.random.default_rng(1).integers(0, 5, size=(3, 4))))
    return B.to_numpy(log_p + np.zeros(3))


def test_a_host_array_mixed_into_model_code_fails_on_strict_though_numpy_runs_it():
    with B.use_backend("numpy"):
        expected = _bipartite_log_prob_plus_host_zeros()
    with B.use_backend(strict_backend.NAME):
        with pytest.raises(TypeError, match=UNSUPPORTED):
            _bipartite_log_prob_plus_host_zeros()
        model = build_model("bipartite", 5, 4, num_flows=2, hidden=8, network="mlp")
        log_p = model.log_prob(model.init(B.host_rng(0)),
                               B.asarray(np.random.default_rng(1).integers(0, 5, size=(3, 4))))
    assert np.array_equal(B.to_numpy(log_p), expected)  # the same numbers once the bug is gone
