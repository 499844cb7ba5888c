"""Straight-through one-hot argmax and the scale mask: exact one-hot forward, softmax-surrogate
backward equal to autograd's (directly and through the primitive), a scale that is always a unit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete.modular import (
    one_hot_add,
    one_hot_add_vjp,
    one_hot_inverse_scale,
    one_hot_multiply,
    one_hot_multiply_vjp,
    units,
)
from mini_flows.discrete.straight_through import (
    hard_one_hot,
    mask_scale_logits,
    mask_scale_logits_backward,
    one_hot_argmax,
    one_hot_argmax_backward,
    scheduled_spread,
    shrink_logits,
    shrink_logits_backward,
)
from mini_flows.nn.losses import softmax_forward
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

seeds = st.integers(0, 2**32 - 1)
KS = [2, 3, 4, 6, 7, 12, 13, 30, 31, 60, 64]
Ks = st.one_of(st.sampled_from(KS), st.integers(2, 64), st.sampled_from([210, 256]))
dtypes = st.sampled_from([np.float32, np.float64])
leads = st.lists(st.integers(1, 4), min_size=0, max_size=3)
taus = st.one_of(st.none(), st.floats(0.05, 3.0))


def non_units(K):
    return [j for j in range(K) if math.gcd(j, K) != 1]


def _argmax(logits, tau):
    return one_hot_argmax(logits) if tau is None else one_hot_argmax(logits, tau)


@given(seeds, Ks, leads, dtypes, st.booleans())
def test_forward_is_the_exact_one_hot_of_the_first_argmax(seed, K, lead, dtype, ties):
    rng = B.host_rng(seed)
    logits = (rng.integers(0, 3, (*lead, K)) if ties else rng.standard_normal((*lead, K)) * 10).astype(dtype)
    y = B.to_numpy(one_hot_argmax(B.asarray(logits))[0])
    first = np.argmax(logits == logits.max(axis=-1, keepdims=True), axis=-1)
    assert y.dtype == dtype
    assert np.array_equal(y, np.eye(K, dtype=dtype)[first])


@given(seeds, Ks, leads, dtypes, st.booleans())
def test_unchecked_hard_one_hot_is_the_forward_value(seed, K, lead, dtype, ties):
    rng = B.host_rng(seed)
    logits = B.asarray((rng.integers(0, 3, (*lead, K)) if ties else rng.standard_normal((*lead, K))).astype(dtype))
    for scale, checked in ((False, logits), (True, mask_scale_logits(logits))):
        assert np.array_equal(B.to_numpy(hard_one_hot(logits, scale=scale)), B.to_numpy(one_hot_argmax(checked)[0]))


@pytest.mark.autograd
@given(seeds, Ks, leads, taus)
def test_backward_is_the_gradient_of_softmax_at_temperature_tau(seed, K, lead, tau):
    rng = B.host_rng(seed)
    logits = rng.standard_normal((*lead, K))
    dy = rng.standard_normal(logits.shape)
    _, cache = _argmax(logits, tau)
    t = 0.1 if tau is None else tau
    (surrogate,) = autograd_grads(lambda z: vjp_loss(softmax_forward(z / t)[0], dy), logits)
    (through_primitive,) = autograd_grads(lambda z: vjp_loss(_argmax(z, tau)[0], dy), logits)
    assert_grads_close(one_hot_argmax_backward(cache, dy), surrogate)
    assert_grads_close(through_primitive, surrogate)


spreads = st.floats(0.01, 3.0)


@given(seeds, Ks, leads, dtypes, spreads, st.floats(0.01, 1e3))
def test_shrunk_logits_keep_their_argmax_and_a_spread_below_the_bound(seed, K, lead, dtype, spread, size):
    """The bound on the root-mean-square spread is spread sqrt(K)."""
    rng = B.host_rng(seed)
    logits = (rng.standard_normal((*lead, K)) * size).astype(dtype)
    shrunk = B.to_numpy(shrink_logits(B.asarray(logits), spread)[0])
    assert shrunk.dtype == dtype
    assert np.array_equal(np.argmax(shrunk, axis=-1), np.argmax(logits, axis=-1))
    assert np.allclose(shrunk.mean(axis=-1), 0, atol=1e-5 * spread)
    assert (np.sqrt((shrunk.astype(np.float64) ** 2).mean(axis=-1)) < spread * math.sqrt(K) * (1 + 1e-5)).all()


@given(seeds, Ks, leads, spreads)
def test_shrinking_small_logits_leaves_their_centred_values_almost_unchanged(seed, K, lead, spread):
    logits = B.host_rng(seed).standard_normal((*lead, K)) * spread * math.sqrt(K) * 1e-3
    centred = logits - logits.mean(axis=-1, keepdims=True)
    assert np.allclose(B.to_numpy(shrink_logits(B.asarray(logits), spread)[0]), centred, rtol=1e-5, atol=0)


def test_the_scheduled_spread_narrows_from_a_thousandfold_to_the_bound_by_half_way():
    assert scheduled_spread(0.03, 0.0) == pytest.approx(30.0, rel=1e-12)
    assert scheduled_spread(0.03, 0.25) == pytest.approx(0.03 * math.sqrt(1000), rel=1e-12)
    assert [scheduled_spread(0.03, p) for p in (0.5, 0.75, 1.0, None)] == [0.03] * 4
    ramp = [scheduled_spread(0.1, p / 20) for p in range(21)]
    assert all(a > b for a, b in zip(ramp[:10], ramp[1:11])) and set(ramp[10:]) == {0.1}


@pytest.mark.autograd
@given(seeds, Ks, leads, spreads)
def test_shrink_backward_matches_autograd(seed, K, lead, spread):
    rng = B.host_rng(seed)
    logits = rng.standard_normal((*lead, K)) * rng.uniform(0.01, 10)
    d = rng.standard_normal(logits.shape)
    _, cache = shrink_logits(logits, spread)
    (auto,) = autograd_grads(lambda z: vjp_loss(shrink_logits(z, spread)[0], d), logits)
    assert_grads_close(shrink_logits_backward(cache, d), auto)


@given(seeds, Ks, leads, dtypes)
def test_masked_scale_is_always_a_unit_even_where_the_raw_logits_favour_a_non_unit(seed, K, lead, dtype):
    rng = B.host_rng(seed)
    raw = rng.standard_normal((*lead, K))
    raw[..., non_units(K)] += 1e6
    raw = raw.astype(dtype)
    masked = mask_scale_logits(B.asarray(raw))
    m = B.to_numpy(masked)
    assert m.dtype == dtype and np.isfinite(m).all()
    assert np.array_equal(m[..., units(K)], raw[..., units(K)])
    assert (m[..., non_units(K)] < -1e18).all()
    p = B.to_numpy(softmax_forward(masked / 0.1)[0])
    assert (p[..., non_units(K)] == 0).all()
    sigma, _ = one_hot_argmax(masked)
    s = B.to_numpy(sigma)
    assert (s[..., non_units(K)] == 0).all() and (s.sum(axis=-1) == 1).all()
    x = B.asarray(np.eye(K, dtype=dtype)[rng.integers(0, K, lead)])
    y = one_hot_multiply(one_hot_multiply(x, sigma), one_hot_inverse_scale(sigma))
    assert np.array_equal(B.to_numpy(y), B.to_numpy(x))


@pytest.mark.autograd
@given(seeds, Ks, leads)
def test_mask_backward_matches_autograd(seed, K, lead):
    rng = B.host_rng(seed)
    logits = rng.standard_normal((*lead, K))
    d = rng.standard_normal(logits.shape)
    (auto,) = autograd_grads(lambda z: vjp_loss(mask_scale_logits(z), d), logits)
    assert_grads_close(mask_scale_logits_backward(K, d), auto)


@pytest.mark.autograd
@given(seeds, st.integers(2, 40), st.integers(1, 3), st.integers(1, 5))
def test_gradient_reaches_location_and_scale_logits_as_autograd_says(seed, K, batch, length):
    """y = sigma x + mu (eq. 5) with mu and sigma straight-through argmaxes of their logits: the
    hand-written chain of backward passes equals autograd on the same forward code."""
    rng = B.host_rng(seed)
    x = np.eye(K)[rng.integers(0, K, (batch, length))]
    loc_logits, scale_logits = rng.standard_normal((2, batch, length, K))
    dy = rng.standard_normal(x.shape)

    def forward(loc_logits, scale_logits, x):
        mu, mu_cache = one_hot_argmax(loc_logits)
        sigma, sigma_cache = one_hot_argmax(mask_scale_logits(scale_logits))
        sx = one_hot_multiply(x, sigma)
        return one_hot_add(sx, mu), (mu, mu_cache, sigma, sigma_cache, sx)

    y, (mu, mu_cache, sigma, sigma_cache, sx) = forward(loc_logits, scale_logits, x)
    dsx, dmu = one_hot_add_vjp(sx, mu, dy)
    dx, dsigma = one_hot_multiply_vjp(x, sigma, dsx)
    dloc = one_hot_argmax_backward(mu_cache, dmu)
    dscale = mask_scale_logits_backward(K, one_hot_argmax_backward(sigma_cache, dsigma))
    auto = autograd_grads(lambda a, b, c: vjp_loss(forward(a, b, c)[0], dy), loc_logits, scale_logits, x)
    assert_grads_close((dloc, dscale, dx), auto)


def _logits(*values):
    return B.asarray(np.array(values, dtype=float))


TAU = "tau must be a finite number > 0"
KSHAPE = r"\(\.\.\., K\) with K >= 2"
BAD_CALLS = [
    pytest.param(lambda: one_hot_argmax(_logits(0.0, np.nan)), ValueError, "logits contains NaN", id="NaN"),
    pytest.param(lambda: mask_scale_logits(_logits(0.0, -np.inf)), ValueError, "logits contains NaN or inf", id="inf"),
    pytest.param(lambda: one_hot_argmax(B.asarray(np.arange(3))), TypeError, "float32 or float64", id="integer"),
    pytest.param(lambda: one_hot_argmax(_logits([0.0], [1.0])), ValueError, KSHAPE, id="K < 2"),
    pytest.param(lambda: mask_scale_logits(_logits([0.0])), ValueError, KSHAPE, id="mask K < 2"),
    pytest.param(lambda: mask_scale_logits(B.asarray(np.float64(1.0))), ValueError, KSHAPE, id="scalar"),
    pytest.param(lambda: one_hot_argmax(_logits(0.0, 1.0), 0.0), ValueError, TAU, id="tau 0"),
    pytest.param(lambda: one_hot_argmax(_logits(0.0, 1.0), -0.1), ValueError, TAU, id="tau < 0"),
    pytest.param(lambda: one_hot_argmax(_logits(0.0, 1.0), float("nan")), ValueError, TAU, id="tau NaN"),
    pytest.param(lambda: one_hot_argmax(_logits(0.0, 1.0), "0.1"), ValueError, TAU, id="tau str"),
    pytest.param(lambda: shrink_logits(_logits(0.0, 1.0), 0.0), ValueError, "spread must be", id="spread 0"),
    pytest.param(lambda: scheduled_spread(0.03, 1.5), ValueError, r"progress must be .* in \[0, 1\]", id="progress 1.5"),
    pytest.param(lambda: scheduled_spread(0.03, -0.1), ValueError, "progress must be", id="progress < 0"),
    pytest.param(lambda: scheduled_spread(0.03, "half"), ValueError, "progress must be", id="progress str"),
    pytest.param(lambda: shrink_logits_backward(shrink_logits(_logits(0.0, 1.0), 0.1)[1], _logits(0.0)), ValueError,
                 "dshrunk must have shape", id="shrink backward shape"),
    pytest.param(
        lambda: one_hot_argmax_backward(one_hot_argmax(_logits(0.0, 1.0))[1], _logits(1.0, 2.0, 3.0)),
        ValueError,
        r"dy must have shape \(2\)",
        id="dy shape",
    ),
    pytest.param(lambda: mask_scale_logits_backward(1, _logits(0.0)), ValueError, "K must be an integer >= 2", id="K1"),
    pytest.param(lambda: mask_scale_logits_backward(4, _logits(0.0, 1.0)), ValueError, r"shape \(\.\.\., 4\)", id="K"),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
