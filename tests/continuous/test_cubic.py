"""The analytic NLSq inverse (supplement B): the cubic's real root, accurate over wide ranges.

The exact measure (tests against mpmath, ``oracle.nlsq_root``): |eps_hat - eps*| in units of
u cond(eps*), eps* the exact root of the given rounded inputs and cond the problem's own condition
number (cubic.py's module docstring); the documented claim is a few units over the whole range.

Cheaper measures for the tests without the oracle (loose: S below counts b |g| / d, which hides an
error in v / d when d is tiny and |g| large; the oracle tests catch that):
  backward error  |f(eps_hat) - z| / S,  S = max(|z|, |a|, b |eps_hat|, |c|, b |g| / d)
      (b |g| / d: evaluating f rounds d eps + g, which moves z by up to ~ b |g| / d ulp);
  round trip      |eps_hat - eps| / E,   E = max(|eps|, |a| / b, |c| / b, |g| / d)
      (E = S / b in eps units: relative to |eps| alone is impossible once |eps| << |a| / b).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.continuous import FlowRangeError, cubic
from mini_flows.continuous.cubic import K_MAX
from tests.continuous.oracle import draw_in_range, nlsq_from_raw, oracle_errors

seeds = st.integers(0, 2**32 - 1)
alphas = st.sampled_from([0.5, 0.95, 0.999])


def nlsq_inverse(*args):
    """The solver on the selected backend, host arrays in and out."""
    return B.to_numpy(cubic.nlsq_inverse(*map(B.asarray, args)))


def depressed_cubic_root(p, q):
    """The closed form on the selected backend, host arrays in and out."""
    return B.to_numpy(cubic.depressed_cubic_root(B.asarray(p), B.asarray(q)))


def nlsq(eps, a, b, c, d, g):
    """The formula (B.1), in the arrays' dtype."""
    return a + b * eps + c / (1 + (d * eps + g) ** 2)


def draw_problem(rng, n, alpha, log_b, log_d, c_raw, dtype="float64"):
    """n random points over the spec's ranges: log_b, log_d in [-3, 3], c_raw in [-6, 6], |eps| <= 1e4,
    a third of them within 1e-6 relative of the point of least slope; the given scalars fill slot 0."""
    log_b = np.append(log_b, rng.uniform(-3, 3, n - 1))
    log_d = np.append(log_d, rng.uniform(-3, 3, n - 1))
    c_raw = np.append(c_raw, rng.uniform(-6, 6, n - 1))
    a = rng.uniform(-1, 1, n) * 10 ** rng.uniform(-3, 3, n)
    g = rng.uniform(-1, 1, n) * 10 ** rng.uniform(-3, 2, n)
    b, d = np.exp(log_b), np.exp(log_d)
    c = K_MAX * alpha * b / d * np.tanh(c_raw)
    eps = rng.uniform(-1, 1, n) * 10 ** rng.uniform(-6, 4, n)
    x_crit = (np.sign(c) / np.sqrt(3) - g) / d
    eps = np.where(rng.random(n) < 1 / 3, x_crit * (1 + 1e-6 * rng.standard_normal(n)), eps)
    return tuple(v.astype(dtype) for v in (eps, a, b, c, d, g))


def errors(eps, eps_hat, a, b, c, d, g):
    """(round-trip error / E, backward error / S), elementwise, in float64; see the module docstring."""
    eps, eps_hat, a, b, c, d, g = (np.asarray(v, dtype=np.float64) for v in (eps, eps_hat, a, b, c, d, g))
    z = nlsq(eps, a, b, c, d, g)
    scale_e = np.maximum.reduce([np.abs(eps), np.abs(a) / b, np.abs(c) / b, np.abs(g) / d])
    scale_s = np.maximum.reduce([np.abs(z), np.abs(a), b * np.abs(eps_hat), np.abs(c), b * np.abs(g) / d])
    return np.abs(eps_hat - eps) / scale_e, np.abs(nlsq(eps_hat, a, b, c, d, g) - z) / scale_s


@given(seeds, alphas, st.floats(-3, 3), st.floats(-3, 3), st.floats(-6, 6))
def test_inverse_accuracy_float64(seed, alpha, log_b, log_d, c_raw):
    eps, a, b, c, d, g = draw_problem(np.random.default_rng(seed), 2000, alpha, log_b, log_d, c_raw)
    z = nlsq(eps, a, b, c, d, g)
    eps_hat = nlsq_inverse(z, a, b, c, d, g)
    assert eps_hat.dtype == np.float64 and np.all(np.isfinite(eps_hat))
    trip, backward = errors(eps, eps_hat, a, b, c, d, g)
    note(f"worst round trip {trip.max():.3e}, worst backward error {backward.max():.3e}")
    assert backward.max() <= 1e-12
    if alpha <= 0.95:
        assert trip.max() <= 1e-10


@given(seeds, st.sampled_from([0.5, 0.95]), st.floats(-3, 3), st.floats(-3, 3), st.floats(-6, 6))
def test_inverse_round_trip_float32(seed, alpha, log_b, log_d, c_raw):
    eps, a, b, c, d, g = draw_problem(np.random.default_rng(seed), 2000, alpha, log_b, log_d, c_raw, "float32")
    z = nlsq(eps, a, b, c, d, g)  # the formula in float32, as training runs it
    eps_hat = nlsq_inverse(z, a, b, c, d, g)
    assert eps_hat.dtype == np.float32 and np.all(np.isfinite(eps_hat))
    trip, _ = errors(eps, eps_hat, a, b, c, d, g)
    assert trip.max() <= 1e-4


def test_huge_z_stays_finite_and_accurate():
    rng = np.random.default_rng(0)
    n = 20000
    _, a, b, c, d, g = draw_problem(rng, n, 0.95, rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-6, 6))
    z = rng.choice([-1.0, 1.0], n) * 10 ** rng.uniform(-300, 300, n)
    eps_hat = nlsq_inverse(z, a, b, c, d, g)
    assert np.all(np.isfinite(eps_hat))
    scale = np.maximum.reduce([np.abs(z), np.abs(a), b * np.abs(eps_hat), np.abs(c), b * np.abs(g) / d])
    with np.errstate(over="ignore"):  # (d eps + g)^2 overflows to inf in this plain test formula: bump = 0
        assert np.max(np.abs(nlsq(eps_hat, a, b, c, d, g) - z) / scale) <= 1e-12


@pytest.mark.parametrize("r", [np.nextafter(1e4, 0), 1e4, -1e4, 1e6, 1e200, np.sqrt(3), -np.sqrt(3), 0.0])
@pytest.mark.parametrize("k", [-0.999 * K_MAX, -0.3, 0.0, 0.3, 0.999 * K_MAX])
def test_inverse_at_branch_boundaries(r, k):
    """r = d (z - a) / b + g at the switch to the large-|r| form (1e4), at p = 0 (r = +-sqrt 3) and 0."""
    a, b, c, d, g = (np.array([v]) for v in (0.0, 1.0, k, 1.0, 0.0))
    eps = nlsq_inverse(np.array([r]), a, b, c, d, g)[0]
    assert np.isfinite(eps)
    with np.errstate(over="ignore"):  # eps^2 = inf for r = 1e200: the term is 0
        residual = eps + k / (1 + eps**2) - r  # u + k / (1 + u^2) = r with u = eps
    assert abs(residual) <= 4e-16 * max(abs(r), abs(eps), abs(k))


def test_inverse_at_the_nearly_flat_point():
    """alpha close to 1: f' = b (1 - alpha) at u = 1/sqrt 3 (a near triple root of the cubic)."""
    for alpha in [0.999, 1 - 1e-6, 1 - 1e-9]:
        k = alpha * K_MAX
        u = 1 / np.sqrt(3) + np.array([-1e-3, -1e-6, 0.0, 1e-6, 1e-3])
        r = u + k / (1 + u**2)
        a, b, c, d, g = (np.full(5, v) for v in (0.0, 1.0, k, 1.0, 0.0))
        u_hat = nlsq_inverse(r, a, b, c, d, g)
        assert np.all(np.abs(u_hat + k / (1 + u_hat**2) - r) <= 4e-16 * np.abs(r))


def cubic_residual(t, p, q):
    return np.abs(t**3 + p * t + q) / np.maximum.reduce([np.abs(t) ** 3, np.abs(p * t), np.abs(q)])


@given(seeds, st.floats(-100, 100))
def test_depressed_root_all_branches(seed, log10_scale):
    """t^3 + p t + q = 0 for p > 0 (sinh), p < 0 (cosh; one real root needs |q| > 2 (|p|/3)^(3/2),
    a third of them within 1e-15 of that boundary) and |q| / |p|^(3/2) up to 1e14, past the
    switch to the cube-root form at 1e12."""
    rng = np.random.default_rng(seed)
    n = 2000
    p = rng.choice([-1.0, 1.0], n) * 10.0 ** (log10_scale + rng.uniform(-3, 3, n))
    boundary = 2 / 3**1.5 * (p < 0)
    near = (p < 0) & (rng.random(n) < 1 / 3)
    ratio = np.where(near, boundary * 10.0 ** rng.uniform(-15, 0, n), 10.0 ** rng.uniform(-6, 14, n))
    q = rng.choice([-1.0, 1.0], n) * np.abs(p) ** 1.5 * (boundary + ratio)
    t = depressed_cubic_root(p, q)
    assert np.all(np.isfinite(t))
    assert np.max(cubic_residual(t, p, q)) <= 5e-15  # the hyperbolic forms lose ~ log(2 |X|) / 3 ulps


def test_depressed_root_exact_cases():
    assert depressed_cubic_root(np.array(0.0), np.array(-8.0)) == pytest.approx(2.0, rel=1e-15)
    assert depressed_cubic_root(np.array(1.0), np.array(0.0)) == 0.0
    assert depressed_cubic_root(np.array(0.0), np.array(0.0)) == 0.0
    assert depressed_cubic_root(np.array(-3.0), np.array(-2.0 - 1e-9)) == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("q", [1e12, -1e12, 1e150, -1e150])
def test_depressed_root_large_x_of_either_sign(q):
    """asinh(X) for X << 0: log(X + sqrt(X^2 + 1)) would cancel to log(0) = -inf; the library does not."""
    p, q = np.array([1.0, 1e-30]), np.array([q, q])
    t = depressed_cubic_root(p, q)
    assert np.all(np.isfinite(t))
    assert np.max(cubic_residual(t, p, q)) <= 2e-15


ORACLE_ULPS = 4  # the documented "few ulps of cond"; benchmarks/nlsq_accuracy.py measures about 2.5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@given(seed=seeds, log_gap=st.floats(-15, -0.01))
def test_inverse_within_a_few_ulps_of_cond_over_the_documented_range(dtype, seed, log_gap):
    """mpmath's root of the rounded z = f(eps) against NLSq.inverse, alpha = 1 - 10^log_gap."""
    f, eps, _ = draw_in_range(np.random.default_rng(seed), 40, dtype, alpha=1 - 10**log_gap)
    z, _ = f.forward(B.asarray(eps))
    eps_hat = B.to_numpy(f.inverse(z)[0])
    assert eps_hat.dtype == np.dtype(dtype)
    err, _ = oracle_errors(f, eps_hat, z)
    note(f"worst {err.max():.3g} ulps of cond at {err.argmax()}")
    assert err.max() <= ORACLE_ULPS


@pytest.mark.parametrize("log_d,g", [(-17.0, 8000.0), (-12.0, 1000.0), (-40.0, 1e15), (-30.0, -9999.0)])
def test_inverse_with_tiny_d_and_large_g(log_d, g):
    """v = u - r from the closed form is off by ~ u |r| and eps = w / b + v / d divides that by d:
    eps was off by 8e-6 at log_d = -17, g = 8000 before the Newton step (B.4)."""
    f = nlsq_from_raw(0.0, 0.0, -30.0, log_d, g, alpha=0.95)
    z, _ = f.forward(B.asarray([-1.0, 0.5, 3.0]))
    eps_hat = B.to_numpy(f.inverse(z)[0])
    np.testing.assert_allclose(eps_hat, [-1.0, 0.5, 3.0], rtol=4e-16)
    assert oracle_errors(f, eps_hat, z)[0].max() <= ORACLE_ULPS


def test_inverse_raises_outside_the_documented_range():
    one = np.ones(1)
    ok = dict(z=one, a=0 * one, b=one, c=0.5 * one, d=one, g=0 * one)
    bad_cases = [
        (dict(b=np.array([1.0, 1e-20])), r"b lies outside \[exp\(-40\), exp\(40\)\].* at index \(1,\)"),
        (dict(d=np.exp(np.array([41.0]))), r"d lies outside"),
        (dict(c=np.array([1.01 * K_MAX])), r"not strictly increasing"),
        (dict(z=np.array([np.nan])), r"z contains NaN or infinity"),
        (dict(z=np.array([1e308]), b=np.array([1e-3]), c=np.zeros(1)), r"eps may overflow"),
        (dict(z=np.array([3e38], "float32")), r"half of float32's largest number"),
    ]
    for change, match in bad_cases:
        args = {**ok, **change}
        with pytest.raises(FlowRangeError, match=match):
            nlsq_inverse(*(args[k] for k in "zabcdg"))
    nudged = np.nextafter(np.float32(K_MAX), np.float32(2))  # float32 rounding of c past K_MAX: accepted
    eps = nlsq_inverse(*(np.array([v], "float32") for v in (0.0, 0.0, 1.0, nudged, 1.0, 0.0)))
    assert np.isfinite(eps).all()
