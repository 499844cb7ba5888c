"""Modular arithmetic on one-hot vectors: bit-exact against integer arithmetic and against the
bilinear definition (tests/discrete/bilinear.py), exact inverses, O(K) vector-Jacobian products
equal to autograd's derivatives of the bilinear maps, and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.discrete.modular import (
    inverse_location_scale,
    inverse_location_scale_vjp,
    location_scale,
    mod_inverse,
    one_hot_add,
    one_hot_add_vjp,
    one_hot_inverse_scale,
    one_hot_inverse_scale_vjp,
    one_hot_minus,
    one_hot_minus_vjp,
    one_hot_multiply,
    one_hot_multiply_vjp,
    units,
)
from tests.discrete import bilinear
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss
from mini_flows.testing.compare import safe_note

PRIMES = [2, 3, 5, 7, 11, 13, 17, 31, 37, 61]
COMPOSITES = [4, 6, 8, 9, 10, 12, 15, 16, 30, 36, 42, 60, 64]
LARGE = [97, 128, 210, 251, 256]

seeds = st.integers(0, 2**32 - 1)
small_Ks = st.one_of(st.sampled_from(PRIMES), st.sampled_from(COMPOSITES), st.integers(2, 64))
Ks = st.one_of(small_Ks, st.sampled_from(LARGE))
composite_Ks = st.sampled_from(COMPOSITES + [128, 210, 256])
dtypes = st.sampled_from([np.float32, np.float64])
leads = st.lists(st.integers(1, 4), min_size=0, max_size=3)


def one_hot(tokens, K, dtype=np.float64):
    return np.eye(K, dtype=dtype)[np.asarray(tokens)]


def brute_inverse(a, K):
    return next(b for b in range(K) if (a * b) % K == 1)


@st.composite
def broadcast_leads(draw):
    """Two leading shapes that broadcast: per axis equal sizes or a 1 on one side; the second may
    also lack leading axes."""
    axes = draw(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 2)), max_size=3))
    first = tuple(1 if mode == 2 else n for n, mode in axes)
    second = tuple(1 if mode == 1 else n for n, mode in axes)
    return first, second[draw(st.integers(0, len(second))):]


# --- units and mod_inverse ---------------------------------------------------------------------


@given(Ks)
def test_units_are_exactly_the_invertible_residues(K):
    assert units(K) == tuple(a for a in range(1, K) if any((a * b) % K == 1 for b in range(K)))


@given(Ks, st.data())
def test_mod_inverse_matches_brute_force(K, data):
    a = data.draw(st.lists(st.tuples(st.sampled_from(units(K)), st.integers(-3, 3)), min_size=1, max_size=8))
    a = [u + k * K for u, k in a]
    note(f"a = {a}")
    expected = [brute_inverse(v % K, K) for v in a]
    for v, inv in zip(a, expected):
        got = mod_inverse(v, K)
        assert type(got) is int and got == inv and (v * got) % K == 1
    got = mod_inverse(B.asarray(np.array(a).reshape(len(a), 1)), K)
    assert B.to_numpy(got).dtype == np.int64
    assert np.array_equal(B.to_numpy(got), np.array(expected).reshape(len(a), 1))


@given(composite_Ks, st.data())
def test_mod_inverse_names_a_and_K_where_not_coprime(K, data):
    a = data.draw(st.sampled_from([j for j in range(K) if math.gcd(j, K) != 1]))
    with pytest.raises(ValueError, match=rf"a = {a} has no inverse modulo K = {K}"):
        mod_inverse(a, K)
    with pytest.raises(ValueError, match=rf"modulo K = {K} .*a = \[{a}\]"):
        mod_inverse(B.asarray(np.array([1, a, K - 1])), K)


@pytest.mark.parametrize(
    "a,K,error,match",
    [
        (3, 1, ValueError, "K must be an integer >= 2"),
        (1, 0, ValueError, "K must be an integer >= 2"),
        (3, 7.0, ValueError, "K must be an integer >= 2"),
        (7, 7, ValueError, "a = 7 has no inverse modulo K = 7"),
        (2.0, 5, TypeError, "a must be an int or an integer array"),
        (True, 5, TypeError, "a must be an int or an integer array"),
        (np.array([1.0, 2.0]), 5, TypeError, "a must be an int or an integer array"),
        (np.array([3]), 2**64 + 1, ValueError, r"K = 18446744073709551617 is too large for an array a: .*K < 2\*\*62"),
        (np.array([3]), 2**62, ValueError, r"K = 4611686018427387904 is too large for an array a"),
    ],
)
def test_mod_inverse_rejects_bad_input(a, K, error, match):
    """Issue 24, item 10: an array with K = 2**64 + 1 raised OverflowError from NumPy."""
    with pytest.raises(error, match=match):
        mod_inverse(a, K)


@given(st.integers(2**61, 2**62 - 1), st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20))
def test_mod_inverse_of_an_array_is_exact_up_to_the_int64_bound(K, values):
    """Below 2**62 every int64 intermediate stays in range: the array path equals Python's pow."""
    a = [v for v in values if math.gcd(v, K) == 1]
    if a:
        assert B.to_numpy(mod_inverse(B.asarray(np.array(a, dtype=np.int64)), K)).tolist() == [pow(v, -1, K) for v in a]


def test_mod_inverse_of_numpy_integers_is_exact():
    """A NumPy integer a or K ran on NumPy scalars: np.int64(3) with K = 2**64 + 1 raised
    OverflowError, an np.int64 K had no bit_length, and uint64 entries above 2**63 wrapped to
    negative int64 and came back as the inverse of another residue."""
    assert mod_inverse(np.int64(3), 2**64 + 1) == pow(3, -1, 2**64 + 1) == mod_inverse(3, 2**64 + 1)
    assert mod_inverse(3, np.int64(7)) == 5 and type(mod_inverse(np.int16(3), np.int64(7))) is int
    big = [2**64 - 1, 2**63 + 2]
    got = mod_inverse(B.asarray(np.array(big, dtype=np.uint64)), 7)
    assert B.to_numpy(got).tolist() == [pow(v, -1, 7) for v in big]


# --- exactness ---------------------------------------------------------------------------------


@given(seeds, Ks, leads, dtypes)
def test_one_hot_ops_equal_the_integer_arithmetic_bit_for_bit(seed, K, lead, dtype):
    rng = B.host_rng(seed)
    x, mu = rng.integers(0, K, lead), rng.integers(0, K, lead)
    sigma = rng.choice(units(K), size=lead)
    X, MU, S = (B.asarray(one_hot(t, K, dtype)) for t in (x, mu, sigma))
    cases = {
        "add": (one_hot_add(X, MU), (x + mu) % K),
        "minus": (one_hot_minus(X, MU), (x - mu) % K),
        "multiply": (one_hot_multiply(X, S), (sigma * x) % K),
        "inverse_scale": (one_hot_inverse_scale(S), np.vectorize(lambda s: brute_inverse(int(s), K))(sigma)),
    }
    for name, (got, tokens) in cases.items():
        got = B.to_numpy(got)
        assert got.dtype == dtype, name
        assert np.array_equal(got, one_hot(tokens, K, dtype)), name


@given(seeds, Ks, leads, dtypes)
def test_inverses_undo_the_ops_bit_for_bit(seed, K, lead, dtype):
    rng = B.host_rng(seed)
    X, MU = (B.asarray(one_hot(rng.integers(0, K, lead), K, dtype)) for _ in range(2))
    S = B.asarray(one_hot(rng.choice(units(K), size=lead), K, dtype))
    S_inv = one_hot_inverse_scale(S)
    assert np.array_equal(B.to_numpy(one_hot_minus(one_hot_add(X, MU), MU)), B.to_numpy(X))
    assert np.array_equal(B.to_numpy(one_hot_add(one_hot_minus(X, MU), MU)), B.to_numpy(X))
    assert np.array_equal(B.to_numpy(one_hot_multiply(one_hot_multiply(X, S), S_inv)), B.to_numpy(X))
    assert np.array_equal(B.to_numpy(one_hot_inverse_scale(S_inv)), B.to_numpy(S))
    # eq. 5 and its inverse: y = mu + sigma x, x = sigma^-1 (y - mu)
    Y = one_hot_add(one_hot_multiply(X, S), MU)
    assert np.array_equal(B.to_numpy(one_hot_multiply(one_hot_minus(Y, MU), S_inv)), B.to_numpy(X))


def test_xor_is_one_hot_add_with_K_2():
    x1, x2 = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    y = B.to_numpy(one_hot_add(B.asarray(one_hot(x2, 2)), B.asarray(one_hot(x1, 2))))
    assert np.array_equal(y, one_hot([0, 1, 1, 0], 2))


@given(seeds, st.sampled_from([3, 6, 64]), broadcast_leads())
def test_leading_axes_broadcast(seed, K, shapes):
    rng = B.host_rng(seed)
    x, mu = rng.integers(0, K, shapes[0]), rng.integers(0, K, shapes[1])
    got = B.to_numpy(one_hot_add(B.asarray(one_hot(x, K)), B.asarray(one_hot(mu, K))))
    assert np.array_equal(got, one_hot((x + mu) % K, K))


# --- against the bilinear definition ------------------------------------------------------------

oracle_Ks = st.one_of(st.sampled_from(PRIMES + COMPOSITES + LARGE), st.integers(2, 256))


def _random_operands(rng, K, shapes, dtype):
    """One-hot x, mu (shape shapes[0], shapes[1]) and a one-hot scale on a unit (shape shapes[1])."""
    x = one_hot(rng.integers(0, K, shapes[0]), K, dtype)
    mu = one_hot(rng.integers(0, K, shapes[1]), K, dtype)
    sigma = one_hot(rng.choice(units(K), size=shapes[1]), K, dtype)
    return B.asarray(x), B.asarray(mu), B.asarray(sigma)


CHECKED_OPS = {
    "add": (one_hot_add, one_hot_add_vjp, bilinear.add, 1),
    "minus": (one_hot_minus, one_hot_minus_vjp, bilinear.minus, 1),
    "multiply": (one_hot_multiply, one_hot_multiply_vjp, bilinear.multiply, 2),
}


@given(seed=seeds, K=oracle_Ks, shapes=broadcast_leads(), dtype=dtypes)
def test_ops_equal_the_bilinear_definition_bit_for_bit(seed, K, shapes, dtype):
    x, mu, sigma = _random_operands(B.host_rng(seed), K, shapes, dtype)
    for name, (op, _, oracle, second) in CHECKED_OPS.items():
        b = mu if second == 1 else sigma
        assert np.array_equal(B.to_numpy(op(x, b)), B.to_numpy(oracle(x, b))), name
    assert np.array_equal(B.to_numpy(one_hot_inverse_scale(sigma)), B.to_numpy(bilinear.inverse_scale(sigma)))


@pytest.mark.autograd
@given(seed=seeds, K=oracle_Ks, shapes=broadcast_leads())
def test_vjps_equal_the_bilinear_maps_derivatives_at_one_hot_points(seed, K, shapes):
    """The O(K) gathers against autograd through the O(K^2) bilinear definition, to 1e-12 relative."""
    rng = B.host_rng(seed)
    x, mu, sigma = _random_operands(rng, K, shapes, np.float64)
    for name, (op, vjp, oracle, second) in CHECKED_OPS.items():
        b = mu if second == 1 else sigma
        dy = rng.standard_normal(op(x, b).shape)
        auto = autograd_grads(lambda a, b: vjp_loss(oracle(a, b), dy), x, b)
        safe_note(f"op {name}")
        assert_grads_close(vjp(x, b, dy), auto, rtol=1e-12)
    dinv = rng.standard_normal(sigma.shape)
    (auto,) = autograd_grads(lambda s: vjp_loss(bilinear.inverse_scale(s), dinv), sigma)
    assert_grads_close(one_hot_inverse_scale_vjp(sigma, dinv), auto, rtol=1e-12)


@given(seed=seeds, K=oracle_Ks, lead=leads, scale=st.booleans(), dtype=dtypes)
def test_fused_eq_5_equals_the_bilinear_composition_bit_for_bit(seed, K, lead, scale, dtype):
    x, mu, sigma = _random_operands(B.host_rng(seed), K, (tuple(lead), tuple(lead)), dtype)
    sigma = sigma if scale else None
    y = location_scale(x, mu, sigma)
    assert np.array_equal(B.to_numpy(y), B.to_numpy(bilinear.location_scale(x, mu, sigma)))
    back = inverse_location_scale(y, mu, sigma)
    assert np.array_equal(B.to_numpy(back), B.to_numpy(bilinear.inverse_location_scale(y, mu, sigma)))
    assert np.array_equal(B.to_numpy(back), B.to_numpy(x))


@pytest.mark.autograd
@given(seed=seeds, K=oracle_Ks, lead=leads, scale=st.booleans())
def test_fused_inverse_vjp_equals_the_bilinear_compositions_derivative(seed, K, lead, scale):
    rng = B.host_rng(seed)
    y, mu, sigma = _random_operands(rng, K, (tuple(lead), tuple(lead)), np.float64)
    dx = rng.standard_normal(y.shape)
    if scale:
        auto = autograd_grads(lambda y, m, s: vjp_loss(bilinear.inverse_location_scale(y, m, s), dx), y, mu, sigma)
        assert_grads_close(inverse_location_scale_vjp(y, mu, sigma, dx), auto, rtol=1e-12)
    else:
        auto = autograd_grads(lambda y, m: vjp_loss(bilinear.inverse_location_scale(y, m, None), dx), y, mu)
        dy, dmu, dsigma = inverse_location_scale_vjp(y, mu, None, dx)
        assert dsigma is None
        assert_grads_close((dy, dmu), auto, rtol=1e-12)


@pytest.mark.autograd
def test_autograd_differentiates_the_ops_through_their_hand_written_vjps():
    rng = B.host_rng(3)
    x, mu, sigma = _random_operands(rng, 7, ((2, 3), (2, 3)), np.float64)
    dy = rng.standard_normal(x.shape)
    auto = autograd_grads(lambda a, b, s: vjp_loss(one_hot_add(one_hot_multiply(a, s), b), dy), x, mu, sigma)
    oracle = autograd_grads(lambda a, b, s: vjp_loss(bilinear.location_scale(a, b, s), dy), x, mu, sigma)
    assert_grads_close(auto, oracle, rtol=1e-12)


# --- bad input ---------------------------------------------------------------------------------


def _hot(tokens, K=6, dtype=np.float64):
    return B.asarray(one_hot(tokens, K, dtype))


def _full(shape, value, dtype=np.float64):
    return B.asarray(np.full(shape, value, dtype=dtype))


NOT_UNIT = "not coprime with K = 6"
BAD_CALLS = [
    pytest.param(lambda: one_hot_add(_full((3, 1), 1.0), _full((3, 1), 1.0)), ValueError, "K >= 2", id="K < 2"),
    pytest.param(lambda: one_hot_add(_hot([1, 2]), _hot([1, 2], K=5)), ValueError, "same K", id="K differs"),
    pytest.param(lambda: one_hot_minus(_full((), 1.0), _hot(1)), ValueError, "same K", id="scalar"),
    pytest.param(lambda: one_hot_minus(_hot([1, 2, 3]), _hot([1, 2])), ValueError, "do not broadcast", id="broadcast"),
    pytest.param(lambda: one_hot_add(_full((2, 6), np.nan), _hot([1, 2])), ValueError, "x contains NaN", id="NaN x"),
    pytest.param(lambda: one_hot_minus(_hot([1]), _full((1, 6), np.inf)), ValueError, "shift contains NaN", id="inf"),
    pytest.param(lambda: one_hot_add(_full((1, 6), 0, np.int64), _hot([0])), TypeError, "float32 or float64", id="int"),
    pytest.param(lambda: one_hot_add(_hot([1], 6, np.float32), _hot([1])), TypeError, "x is float32 but shift is float64"),
    pytest.param(lambda: one_hot_multiply(_hot([1]), _hot([0])), ValueError, NOT_UNIT, id="scale at 0"),
    pytest.param(lambda: one_hot_multiply(_hot([1]), _hot([3])), ValueError, NOT_UNIT, id="scale at 3"),
    pytest.param(lambda: one_hot_multiply(_hot([1]), _hot([5]) + 1e-30 * _hot([2])), ValueError, "mask_scale_logits"),
    pytest.param(lambda: one_hot_add(0.5 * _hot([1]), _hot([2])), ValueError, "x must be one-hot", id="soft x"),
    pytest.param(lambda: one_hot_minus(_hot([1]), _hot([2]) + _hot([3])), ValueError, "shift must be one-hot"),
    pytest.param(lambda: one_hot_multiply(_full((1, 6), 0.0), _hot([5])), ValueError, "x must be one-hot", id="zero"),
    pytest.param(lambda: one_hot_inverse_scale(0.5 * _hot([5])), ValueError, "scale must be one-hot"),
    pytest.param(lambda: one_hot_inverse_scale(_hot([1, 4])), ValueError, NOT_UNIT, id="inverse of 4"),
    pytest.param(lambda: one_hot_inverse_scale(_full((2, 1), 1.0)), ValueError, "K >= 2", id="inverse K < 2"),
    pytest.param(lambda: one_hot_inverse_scale(_full(6, np.nan)), ValueError, "scale contains NaN", id="NaN scale"),
    pytest.param(lambda: one_hot_add_vjp(_hot([1, 2]), _hot([3]), _hot([1])), ValueError, r"dy must have shape \(2, "),
    pytest.param(lambda: one_hot_minus_vjp(_hot([1]), _hot([3]), _hot([1, 2])), ValueError, r"dx must have shape \(1, "),
    pytest.param(lambda: one_hot_multiply_vjp(_hot([1]), _hot([5]), _hot([1], K=5)), ValueError, r"dy must have shape"),
    pytest.param(lambda: one_hot_inverse_scale_vjp(_hot([5]), _hot([1, 1])), ValueError, r"dinv must have shape \(1, "),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
