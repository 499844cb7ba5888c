"""Affine and NLSq scalar transforms: bijection, log-det, backward passes, normalization, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.continuous import FlowRangeError
from mini_flows.continuous.cubic import K_MAX
from mini_flows.continuous.scalar import AffineTransform, NLSq, NLSqTransform
from mini_flows.testing import assert_inverse_pair, assert_jacobian_logdet
from tests.continuous import oracle
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 5)
TRANSFORMS = [AffineTransform(), NLSqTransform(0.5), NLSqTransform(0.95), NLSqTransform(0.999)]
IDS = ["affine", "nlsq0.5", "nlsq0.95", "nlsq0.999"]
# (a, log_b, c_raw, log_d, g) ranges; the affine transform takes the first two
RAW_LOW = np.array([-5.0, -3.0, -6.0, -3.0, -5.0])
RAW_HIGH = -RAW_LOW


def draw_raw(rng, shape, t):
    return rng.uniform(RAW_LOW[: t.num_params], RAW_HIGH[: t.num_params], (*shape, t.num_params))


def draw_x(rng, shape):
    return rng.standard_normal(shape) * 10 ** rng.uniform(-1, 2, shape)


def directions(t, raw):
    """(forward, inverse) pairs in both orders: the formula and the solve each as the forward map."""

    def formula(x):
        return t.formula(raw, x)[0]

    def solve(y):
        return t.solve(raw, y)[0]

    return {"formula": (formula, solve), "solve": (solve, formula)}


@pytest.mark.parametrize("direction", ["formula", "solve"])
@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(seed=seeds, n=st.integers(1, 50))
def test_bijection(t, direction, seed, n):
    rng = B.host_rng(seed)
    raw = draw_raw(rng, (n,), t)
    x = draw_x(rng, (n,))
    assert_inverse_pair(*directions(t, raw)[direction], x)


@pytest.mark.parametrize("direction", ["formula", "solve"])
@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(seed=seeds, n=sizes)
def test_logdet_against_jacobian(t, direction, seed, n):
    rng = B.host_rng(seed)
    raw = draw_raw(rng, (n,), t)
    assert_jacobian_logdet(directions(t, raw)[direction][0], draw_x(rng, (n,)))


# (raw leading shape, x shape) that broadcast, with size-1 axes on either side
shape_pairs = st.lists(st.tuples(sizes, st.sampled_from(["both", "raw1", "x1"])), min_size=0, max_size=3).map(
    lambda axes: (
        tuple(1 if kind == "raw1" else n for n, kind in axes),
        tuple(1 if kind == "x1" else n for n, kind in axes),
    )
)


@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(seed=seeds, shapes=shape_pairs)
def test_formula_backward_matches_autograd(t, seed, shapes):
    rng = B.host_rng(seed)
    raw, x = draw_raw(rng, shapes[0], t), draw_x(rng, shapes[1])
    (y, logdet), cache = t.formula(raw, x)
    dy, dlogdet = rng.standard_normal(y.shape), rng.standard_normal(y.shape)
    hand = t.formula_backward(cache, dy, dlogdet)

    def loss(raw, x):
        y, logdet = t.formula(raw, x)[0]
        return vjp_loss(y, dy) + vjp_loss(logdet, dlogdet)

    assert_grads_close(hand, autograd_grads(loss, raw, x))


@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(seed=seeds, shapes=shape_pairs)
def test_solve_backward_matches_autograd_through_the_cubic(t, seed, shapes):
    """autograd differentiates the closed-form root itself (where branches, asinh, acosh, ...)."""
    rng = B.host_rng(seed)
    raw = draw_raw(rng, shapes[0], t)
    y = draw_x(rng, shapes[1])
    (x, logdet), cache = t.solve(raw, y)
    dx, dlogdet = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    hand = t.solve_backward(cache, dx, dlogdet)

    def loss(raw, y):
        x, logdet = t.solve(raw, y)[0]
        return vjp_loss(x, dx) + vjp_loss(logdet, dlogdet)

    assert_grads_close(hand, autograd_grads(loss, raw, y))


@pytest.mark.parametrize("alpha", [0.5, 0.999])
@pytest.mark.parametrize("r", [0.5, -3**0.5 * (1 + 1e-7), 3**0.5, 5.0, -2e4], ids=["sinh", "flat-", "flat", "cosh", "asym"])
@given(seed=seeds)
def test_solve_backward_through_each_branch_of_the_cubic(alpha, r, seed):
    """r = d (y - a) / b + g picks the branch: p = 1 - r^2 / 3 > 0, ~ 0, < 0, and |r| >= 1e4."""
    t = NLSqTransform(alpha)
    rng = B.host_rng(seed)
    raw = draw_raw(rng, (6,), t)
    a, b, d, g = raw[:, 0], np.exp(raw[:, 1]), np.exp(raw[:, 3]), raw[:, 4]
    y = a + b * (r - g) / d
    (x, _), cache = t.solve(raw, y)
    dx, dlogdet = rng.standard_normal(6), rng.standard_normal(6)

    def loss(raw, y):
        x, logdet = t.solve(raw, y)[0]
        return vjp_loss(x, dx) + vjp_loss(logdet, dlogdet)

    assert_grads_close(t.solve_backward(cache, dx, dlogdet), autograd_grads(loss, raw, y))


@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(seed=seeds, n=st.integers(1, 20))
def test_solve_backward_matches_implicit_function_theorem(t, seed, n):
    """The solve's gradient from autograd's gradient of the formula at the solution x* = f^-1(y):
    dx*/dy = 1 / f'(x*), dx*/dtheta = -(df/dtheta) / f'(x*); logdet = -log f'(x*)."""
    rng = B.host_rng(seed)
    raw = draw_raw(rng, (n,), t)
    y = t.formula(raw, draw_x(rng, (n,)))[0][0]
    (x, _), cache = t.solve(raw, y)
    dx, dlogdet = rng.standard_normal(n), rng.standard_normal(n)
    draw, dy = t.solve_backward(cache, dx, dlogdet)
    _, fprime = autograd_grads(lambda r, x: t.formula(r, x)[0][0].sum(), raw, x)  # elementwise f'(x)
    _, dL_dx = autograd_grads(lambda r, x: t.formula(r, x)[0][1].sum(), raw, x)  # d log f' / dx
    dy_ift = (dx - dlogdet * dL_dx) / fprime

    def formula_loss(raw, x):
        y, log_fprime = t.formula(raw, x)[0]
        return vjp_loss(y, -dy_ift) + vjp_loss(log_fprime, -dlogdet)

    draw_ift, _ = autograd_grads(formula_loss, raw, x)
    assert_grads_close((draw, dy), (draw_ift, dy_ift))


@pytest.mark.parametrize("alpha", [0.5, 0.95, 0.999])
@given(seed=seeds, log_b=st.floats(-3, 3), c_raw=st.floats(-20, 20), log_d=st.floats(-3, 3), g=st.floats(-5, 5))
def test_nlsq_strictly_increasing(alpha, seed, log_b, c_raw, log_d, g):
    """f' >= b (1 - alpha) everywhere, so f increases on any grid, across the least-slope point."""
    t = NLSqTransform(alpha)
    raw = np.array([B.host_rng(seed).uniform(-5, 5), log_b, c_raw, log_d, g])
    d = np.exp(log_d)
    x = np.sort(np.concatenate([np.linspace(-1e3, 1e3, 2001), (-g + np.linspace(-3, 3, 2001)) / d]))
    x = x[np.concatenate([[True], np.diff(x) > 1e-6 * (1 + np.abs(x[1:]))])]  # gaps above round-off in y
    (y, logdet), _ = t.formula(raw, x)
    note(f"min slope / b {np.exp(logdet - log_b).min():.3e}")
    assert np.all(np.exp(logdet - log_b) >= (1 - alpha) * (1 - 1e-12))
    assert np.all(np.diff(y) > 0)


def composed_density(layers, z):
    """p(z) for z = f_L(... f_1(eps)), eps ~ N(0, 1): solve layer by layer, adding log |d f^-1 / dz|."""
    log_p = np.zeros_like(z)
    for t, raw in reversed(layers):
        (z, logdet), _ = t.solve(raw, z)
        log_p = log_p + logdet
    return np.exp(log_p - 0.5 * z**2 - 0.5 * np.log(2 * np.pi))


@given(seed=seeds, num_layers=st.integers(1, 4), alpha=st.sampled_from([0.5, 0.95]))
def test_nlsq_compositions_integrate_to_one(seed, num_layers, alpha):
    """Trapezoid rule for p(z) over [f(-9), f(9)] (N(0, 1) mass outside: 2e-19). The nodes: a
    uniform grid plus the images f(eps) of a uniform eps grid, which crowd where slope dips of
    several layers line up into spikes (a min slope near 0.05^4 b); p(z) itself comes from the
    cubic inverse alone."""
    rng = B.host_rng(seed)
    t = NLSqTransform(alpha)
    low, high = np.array([-1.0, -0.5, -3.0, -0.5, -1.0]), np.array([1.0, 0.5, 3.0, 0.5, 1.0])
    layers = [(t, rng.uniform(low, high)) for _ in range(num_layers)]
    z_of_eps = np.linspace(-9.0, 9.0, 40_001)
    for t_, raw in layers:
        z_of_eps = t_.formula(raw, z_of_eps)[0][0]
    z = np.unique(np.concatenate([np.linspace(z_of_eps[0], z_of_eps[-1], 40_001), z_of_eps]))
    mass = np.trapezoid(composed_density(layers, z), z)
    note(f"range [{z[0]}, {z[-1]}], mass {mass!r}")
    assert abs(mass - 1) <= 1e-4


def test_float32_in_float32_out():
    rng = B.host_rng(0)
    for t in TRANSFORMS:
        raw, x = draw_raw(rng, (7,), t).astype("float32"), rng.standard_normal(7).astype("float32")
        (y, logdet), _ = t.formula(raw, x)
        (x_back, logdet_inv), _ = t.solve(raw, y)
        assert {y.dtype, logdet.dtype, x_back.dtype, logdet_inv.dtype} == {np.dtype("float32")}
        np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)


@given(seed=seeds, n=sizes, alpha=st.sampled_from([0.5, 0.95]))
def test_nlsq_class_matches_transform(seed, n, alpha):
    rng = B.host_rng(seed)
    t = NLSqTransform(alpha)
    raw, eps = draw_raw(rng, (n,), t), draw_x(rng, (n,))
    f = NLSq.from_raw(*(raw[:, i] for i in range(5)), alpha=alpha)
    z, logdet = f.forward(eps)
    (z_t, logdet_t), _ = t.formula(raw, eps)
    np.testing.assert_allclose(z, z_t, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(logdet, logdet_t, rtol=1e-14, atol=1e-14)
    assert_inverse_pair(f.forward, f.inverse, eps)


def test_nlsq_class_constrained_parameters():
    f = NLSq(*(np.array([v]) for v in (0.5, 2.0, 1.0, 1.0, -0.3)))
    z, logdet = f.forward(np.array([0.3]))
    np.testing.assert_allclose(z, 0.5 + 2 * 0.3 + 1 / (1 + 0.0**2), rtol=1e-15)
    np.testing.assert_allclose(logdet, np.log(2.0), rtol=1e-15)  # s = d eps + g = 0: f' = b
    with pytest.raises(ValueError, match="strictly increasing"):
        NLSq(*(np.array([v]) for v in (0.0, 1.0, 1.0, K_MAX, 0.0)))  # |c| d / b = K_MAX
    with pytest.raises(ValueError, match="positive"):
        NLSq(*(np.array([v]) for v in (0.0, -1.0, 0.0, 1.0, 0.0)))


def test_huge_inputs_stay_finite():
    t = NLSqTransform(0.95)
    raw = np.array([[0.0, 0.0, 3.0, 2.0, 0.0]])
    x = np.array([-1e300, -1e200, 1e200, 1e300])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        (y, logdet), _ = t.formula(raw, x)
        (x_back, logdet_inv), _ = t.solve(raw, y)
    assert np.all(np.isfinite(logdet)) and np.all(np.isfinite(logdet_inv))
    np.testing.assert_allclose(x_back, x, rtol=1e-15)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        NLSqTransform(alpha)
    with pytest.raises(ValueError, match="alpha"):
        NLSq.from_raw(*(np.zeros(2) for _ in range(5)), alpha=alpha)


@pytest.mark.parametrize("t", TRANSFORMS[:2], ids=IDS[:2])
def test_bad_shapes(t):
    x = np.zeros(4)
    for raw in (np.zeros((4, t.num_params + 1)), np.zeros((4, t.num_params - 1)), np.zeros(())):
        with pytest.raises(ValueError, match=rf"raw must have shape \(\.\.\., {t.num_params}\)"):
            t.formula(raw, x)
        with pytest.raises(ValueError, match="raw must have shape"):
            t.solve(raw, x)
    with pytest.raises(ValueError, match="do not broadcast"):
        t.formula(np.zeros((4, t.num_params)), np.zeros(3))
    with pytest.raises(ValueError, match="do not broadcast"):
        t.solve(np.zeros((2, 4, t.num_params)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="do not broadcast"):
        NLSq.from_raw(*(np.zeros(n) for n in (2, 2, 3, 2, 2)))
    with pytest.raises(ValueError, match="do not broadcast"):
        NLSq.from_raw(*(np.zeros(2) for _ in range(5))).forward(np.zeros(3))


@pytest.mark.parametrize("t", TRANSFORMS[:2], ids=IDS[:2])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input(t, bad):
    raw, x = np.zeros((3, t.num_params)), np.zeros(3)
    with pytest.raises(ValueError, match="raw contains NaN"):
        t.formula(np.where(np.arange(t.num_params) == 1, bad, raw), x)
    with pytest.raises(ValueError, match="x contains NaN"):
        t.formula(raw, np.array([0.0, bad, 0.0]))
    with pytest.raises(ValueError, match="y contains NaN"):
        t.solve(raw, np.array([bad, 0.0, 0.0]))
    with pytest.raises(ValueError, match="eps contains NaN"):
        NLSq.from_raw(*(np.zeros(3) for _ in range(5))).forward(np.array([bad, 0.0, 0.0]))
    with pytest.raises(ValueError, match="c_raw contains NaN"):
        NLSq.from_raw(*(np.full(3, bad) if i == 2 else np.zeros(3) for i in range(5)))


@pytest.mark.parametrize("t", TRANSFORMS[:2], ids=IDS[:2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_unchecked_calls_still_refuse_non_finite_input(t, bad):
    """check=False (a flow layer's call) skips dtype and shape checks, never the range checks."""
    raw, x = np.zeros((3, t.num_params)), np.zeros(3)
    bad_raw = np.where(np.arange(t.num_params) == 0, bad, raw)
    for run, name in ((t.formula, "x"), (t.solve, "y")):
        with pytest.raises(FlowRangeError, match=r"raw contains NaN or infinity at index \(0,\)"):
            run(bad_raw, x, check=False)
        with pytest.raises(FlowRangeError, match=rf"{name} contains NaN or infinity at index \(1,\)"):
            run(raw, np.array([0.0, bad, 0.0]), check=False)


@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(seed=seeds, n=sizes)
def test_unchecked_calls_equal_checked_ones(t, seed, n):
    rng = B.host_rng(seed)
    raw, x = draw_raw(rng, (n,), t), draw_x(rng, (n,))
    for run in (t.formula, t.solve):
        (value, logdet), _ = run(raw, x)
        (value_unchecked, logdet_unchecked), _ = run(raw, x, check=False)
        np.testing.assert_array_equal(value, value_unchecked)
        np.testing.assert_array_equal(logdet, logdet_unchecked)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finite_inputs_whose_sum_overflows_are_accepted(dtype):
    """The finiteness checks add each array up first; a total that overflows although every entry
    is finite sends them entry by entry, which finds nothing to refuse."""
    top = float(np.finfo(dtype).max) / 2
    raw = np.zeros((3, 2), dtype)
    raw[:, 0] = top  # a = max / 2 in every row: the sum of a overflows, y = a + x does not
    x = np.full(3, top / 4, dtype)
    with np.errstate(over="ignore"):
        (y, logdet), _ = AffineTransform().formula(raw, x)
    assert np.isfinite(y).all() and np.isfinite(logdet).all()


@pytest.mark.parametrize("t", TRANSFORMS[:2], ids=IDS[:2])
def test_bad_dtypes(t):
    raw = np.zeros((3, t.num_params))
    with pytest.raises(TypeError, match="x is float32 but the parameters are float64"):
        t.formula(raw, np.zeros(3, dtype="float32"))
    with pytest.raises(TypeError, match="y must be a float32 or float64 array"):
        t.solve(raw, np.zeros(3, dtype=int))
    with pytest.raises(TypeError, match="raw must be a float32 or float64 array"):
        t.formula(np.zeros((3, t.num_params), dtype=int), np.zeros(3))


def test_nlsq_takes_plain_python_numbers():
    f = NLSq.from_raw(0.5, 0.2, 2.0, 1.0, -0.3)
    z, logdet = f.forward(1.5)
    eps, logdet_inv = f.inverse(z)
    assert abs(float(eps) - 1.5) < 1e-12 and abs(float(logdet) + float(logdet_inv)) < 1e-12


@pytest.mark.parametrize("varying", range(6))
def test_nlsq_results_have_the_broadcast_shape_of_the_parameters_and_the_input(varying):
    """One of a, b, c, d, g, eps an array (3,), the rest scalars: z, logdet and the inverse's eps and
    logdet are all (3,), equal to the fully broadcast computation (issue 24, item 9: with only a an
    array, forward's logdet had shape (), since log f' does not read a)."""
    values = [np.full(3, v) if i == varying else v for i, v in enumerate((0.5, 1.2, 0.3, 0.8, -0.3, 1.5))]
    full = [np.broadcast_to(v, (3,)).copy() for v in values]
    for args in (values, full):
        assert all(r.shape == (3,) for r in NLSq(*args[:5]).forward(args[5]) + NLSq(*args[:5]).inverse(args[5]))
    for got, want in zip(NLSq(*values[:5]).forward(values[5]), NLSq(*full[:5]).forward(full[5])):
        np.testing.assert_array_equal(got, want)


NEAR_ONE = [1 - 1e-7, 1 - 1e-8, 1 - 2.0**-40, float(np.nextafter(1.0, 0.0))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha", NEAR_ONE)
def test_logdet_near_the_flattest_point_is_finite_and_exact(alpha, dtype):
    """20,001 points around the least slope b (1 - alpha) (c_raw = 30: tanh = 1): float32 gave
    -inf or NaN at a quarter of them for alpha >= 1 - 1e-7 (1 - m cancelled); now every logdet is
    finite, above log(1 - alpha), and matches mpmath's log f'(x) at the rounded inputs."""
    t = NLSqTransform(alpha)
    raw = np.array([0.0, 0.0, 30.0, 0.0, 0.0], dtype)
    x = (1 / np.sqrt(3) + np.linspace(-1e-3, 1e-3, 20_001)).astype(dtype)
    (_, logdet), _ = t.formula(raw, x)
    assert logdet.dtype == np.dtype(dtype) and np.all(np.isfinite(logdet))
    assert np.all(logdet >= np.log(1 - alpha) - 1e-6)
    u = np.finfo(dtype).eps / 2
    for i in range(0, x.size, 200):
        exact, dL_ds = oracle.nlsq_transform_log_slope(float(x[i]), tuple(map(float, raw)), alpha)
        tol = 8 * u * (1 + abs(float(exact)) + abs(float(dL_ds)) * abs(float(x[i])))  # s = x here, rounded once
        assert abs(float(logdet[i]) - float(exact)) <= tol, (i, float(logdet[i]), float(exact))


@pytest.mark.parametrize("alpha", NEAR_ONE)
def test_float32_solve_and_from_raw_near_alpha_one(alpha):
    """The solve stays finite and consistent with the formula, and from_raw accepts its own float32
    output (it refused it: c rounded up past the bound) however close alpha is to 1."""
    t = NLSqTransform(alpha)
    raw = np.array([[0.5, 0.3, 30.0, -0.2, 0.1], [0.0, 0.0, -30.0, 0.0, 0.0], [0.0, 9.230809, 30.0, -9.305796, 0.0]],
                   "float32")  # the last: c from exp(log_b - log_d) would sit 8e-7 past the bound
    x = np.array([0.3, -1 / np.sqrt(3), 0.5], "float32")
    (y, logdet), _ = t.formula(raw, x)
    (x_back, logdet_inv), _ = t.solve(raw, y)
    assert np.all(np.isfinite(x_back)) and np.all(np.isfinite(logdet_inv))
    np.testing.assert_allclose(t.formula(raw, x_back)[0][0], y, rtol=1e-6, atol=1e-6)
    f = NLSq.from_raw(*(raw[:, i] for i in range(5)), alpha=alpha)
    assert f.c.dtype == np.float32
    assert np.all(np.abs(f.c.astype(np.float64)) * f.d / f.b < K_MAX)
    z, logdet = f.forward(x)
    eps, logdet_inv = f.inverse(z)
    assert np.all(np.isfinite(logdet)) and np.all(np.isfinite(eps)) and np.all(np.isfinite(logdet_inv))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nlsq_keeps_the_dtype_of_0d_arrays_and_numpy_scalars(dtype):
    """0-d float32 arrays raised a dtype TypeError and NumPy float32 scalars were upcast to float64."""
    values = (0.5, 0.2, 2.0, 1.0, -0.3)
    for wrap in (lambda v: np.array(v, dtype), np.dtype(dtype).type):
        f = NLSq.from_raw(*map(wrap, values), alpha=0.95)
        assert {v.dtype for v in (f.a, f.b, f.c, f.d, f.g)} == {np.dtype(dtype)}
        z, logdet = f.forward(wrap(1.5))
        eps, logdet_inv = f.inverse(z)
        assert {np.asarray(v).dtype for v in (z, logdet, eps, logdet_inv)} == {np.dtype(dtype)}
        assert abs(float(eps) - 1.5) < 1e-5 and abs(float(logdet) + float(logdet_inv)) < 1e-5
    assert NLSq.from_raw(*values).a.dtype == np.float64  # plain Python floats are float64


def test_out_of_range_raw_raises_naming_the_index():
    """log_b = -800 made exp(log_b) = 0 and the solve returned (nan, nan); a finite raw whose y
    overflows made the formula return inf or NaN."""
    with pytest.raises(FlowRangeError, match=r"b lies outside \[exp\(-40\), exp\(40\)\].* at index \(\)"):
        NLSqTransform().solve(np.array([0, -800.0, 1, 0, 0]), np.array(1.0))
    raw = np.zeros((3, 5))
    raw[1, 3] = 45.0  # d = exp(45)
    with pytest.raises(FlowRangeError, match="d lies outside") as err:
        NLSqTransform().solve(raw, np.zeros(3))
    assert err.value.index == (1,)
    for t, dtype, log_b in [(NLSqTransform(), "float64", 800.0), (NLSqTransform(), "float32", 100.0),
                            (AffineTransform(), "float32", 100.0)]:
        raw = np.zeros((2, 3, t.num_params), dtype)
        raw[1, 2, 1] = log_b
        with pytest.raises(FlowRangeError, match=rf"y = f\(x\) is NaN or infinity in {dtype} .* at index \(1, 2\)") as err:
            with np.errstate(over="ignore", invalid="ignore"):  # exp(log_b) = inf on the way
                t.formula(raw, np.ones(3, dtype))
        assert err.value.index == (1, 2)


huge = st.builds(lambda sign, e: sign * 10.0**e, st.sampled_from([-1.0, 1.0]), st.floats(0, 300))


@pytest.mark.parametrize("t", TRANSFORMS, ids=IDS)
@given(raw=st.lists(huge, min_size=5, max_size=5), x=huge)
def test_huge_finite_inputs_give_finite_results_or_a_range_error(t, raw, x):
    raw, x = np.array(raw[: t.num_params]), np.array([x])
    for run in (t.formula, t.solve):
        try:
            with np.errstate(all="ignore"):
                (out, logdet), _ = run(raw, x)
        except FlowRangeError as err:
            assert err.index == (0,)
            continue
        assert np.isfinite(out).all() and np.isfinite(logdet).all()
