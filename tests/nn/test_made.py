"""MADE: backward equals autograd, the autoregressive property holds exactly, bad input raises."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.nn import activations
from mini_flows.nn.made import MADE
from mini_flows.nn.tree import tree_map
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)


@st.composite
def mades(draw, activation=None, min_hidden=1):
    """A MADE of drawn sizes and order ("forward", "reversed" or a random permutation)."""
    dim = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["forward", "reversed", "permutation"]))
    order = draw(st.permutations(range(dim))) if kind == "permutation" else kind
    hidden = draw(st.lists(st.integers(min_hidden, 8), max_size=2))
    act = activation or draw(st.sampled_from(sorted(activations.ACTIVATIONS)))
    features = draw(st.sampled_from([None, 1, 3]))
    made = MADE(dim, hidden, draw(st.integers(1, 3)), draw(st.integers(0, 3)), order, act, in_features=features)
    note(f"MADE(dim={dim}, hidden={hidden}, P={made.params_per_dim}, C={made.cond_size}, order={made.order}, {act}, F={features})")
    return made


def random_params(made, rng):
    """Initial parameters plus noise everywhere, masked entries and biases included, so that the
    masks (not zeros in W) must do the work and no ReLU input sits exactly at its kink."""
    return tree_map(lambda a: a + rng.standard_normal(a.shape), made.init(rng))


def inputs(made, rng, lead):
    x = rng.standard_normal((*lead, *made.x_tail))
    cond = rng.standard_normal((*lead, made.cond_size)) if made.cond_size else None
    return x, cond


@given(mades(min_hidden=1), seeds, st.lists(st.integers(1, 3), max_size=2))
def test_backward_matches_autograd(made, seed, lead):
    rng = B.host_rng(seed)
    params = random_params(made, rng)
    x, cond = inputs(made, rng, lead)
    out, cache = made.forward(params, x, cond)
    assert out.shape == (*lead, made.dim, made.params_per_dim)
    dout = rng.standard_normal(out.shape)
    grads, dx, dcond = made.backward(params, cache, dout)
    if cond is None:
        assert dcond is None
        auto = autograd_grads(lambda p, x: vjp_loss(made.forward(p, x)[0], dout), params, x)
        assert_grads_close((grads, dx), auto)
    else:
        auto = autograd_grads(lambda p, x, c: vjp_loss(made.forward(p, x, c)[0], dout), params, x, cond)
        assert_grads_close((grads, dx, dcond), auto)


def jacobians(made, params, x, cond):
    """Autograd's exact d out / d x : (D, P, D) (summed in absolute value over the F features of
    each input dimension) and d out / d cond : (D, P, C) at one point."""
    with B.use_autograd():
        jx = autograd.jacobian(lambda x: made.forward(params, x, cond)[0])(x)
        jc = autograd.jacobian(lambda c: made.forward(params, x, c)[0])(cond) if made.cond_size else None
    if made.in_features is not None:
        jx = np.abs(jx).sum(axis=-1)
    return jx, jc


def earlier(made):
    """allowed[i, j]: dimension j comes strictly before dimension i in the order."""
    o = np.array(made.order)
    return o[None, :] < o[:, None]


@given(mades(min_hidden=1), seeds)
def test_output_depends_only_on_earlier_inputs(made, seed):
    rng = B.host_rng(seed)
    params = random_params(made, rng)
    x, cond = inputs(made, rng, ())
    jx, _ = jacobians(made, params, x, cond)
    forbidden = ~earlier(made)
    assert np.all(jx.transpose(0, 2, 1)[forbidden] == 0.0)


@given(mades(activation="tanh", min_hidden=5), seeds)
def test_every_allowed_dependency_is_present(made, seed):
    # with tanh (never flat) and every degree present in every hidden layer, the masks allow
    # exactly the pairs j before i: nothing allowed is cut off, and every output sees cond
    rng = B.host_rng(seed)
    params = random_params(made, rng)
    x, cond = inputs(made, rng, ())
    jx, jc = jacobians(made, params, x, cond)
    np.testing.assert_array_equal(np.any(jx != 0, axis=1), earlier(made))
    if made.cond_size:
        assert np.all(np.any(jc != 0, axis=(1, 2)))


def test_forward_order_is_the_identity_and_reversed_its_reverse():
    assert MADE(4, [8], 2).order == (0, 1, 2, 3)
    assert MADE(4, [8], 2, order="reversed").order == tuple(reversed(MADE(4, [8], 2).order))
    assert MADE(3, [8], 1, order=np.array([2, 0, 1])).order == (2, 0, 1)


@given(seeds, st.integers(1, 5), st.lists(st.integers(1, 8), max_size=2), st.integers(0, 2))
def test_reversed_made_is_forward_made_on_reversed_input(seed, dim, hidden, cond_size):
    # flipping the input rows of the first layer and the output columns of the last maps the
    # parameters of a reversed MADE onto a forward one computing the same function
    rng = B.host_rng(seed)
    reverse, forward = MADE(dim, hidden, 2, cond_size, "reversed"), MADE(dim, hidden, 2, cond_size, "forward")
    params = random_params(reverse, rng)
    flipped = {k: dict(v) for k, v in params.items()}
    first, last = "layer_0", f"layer_{len(hidden)}"
    flipped[first]["W"] = flipped[first]["W"][::-1]
    unit = np.arange(dim * 2).reshape(dim, 2)[::-1].reshape(-1)
    flipped[last]["W"], flipped[last]["b"] = flipped[last]["W"][:, unit], flipped[last]["b"][unit]
    if "W_cond" in flipped[last]:
        flipped[last]["W_cond"] = flipped[last]["W_cond"][:, unit]
    x, cond = inputs(reverse, rng, (3,))
    out_r, _ = reverse.forward(params, x, cond)
    out_f, _ = forward.forward(flipped, x[:, ::-1], cond)
    np.testing.assert_allclose(out_r, out_f[:, ::-1], rtol=1e-12, atol=1e-12)


def test_masks_are_fixed_and_weight_gradients_are_masked():
    made = MADE(3, [5, 4], 2, cond_size=1, order=[1, 2, 0])
    masks = made.masks()
    assert all(np.array_equal(a, b) for a, b in zip(masks, MADE(3, [5, 4], 2, 1, [1, 2, 0]).masks(), strict=True))
    assert all(set(np.unique(m)) <= {0.0, 1.0} for m in masks)
    rng = B.host_rng(0)
    params = made.init(rng)
    for i, mask in enumerate(masks):
        assert np.all(params[f"layer_{i}"]["W"][mask == 0] == 0.0)
    params = random_params(made, rng)
    out, cache = made.forward(params, *inputs(made, rng, (4,)))
    grads, _, _ = made.backward(params, cache, rng.standard_normal(out.shape))
    for i, mask in enumerate(masks):
        assert np.all(grads[f"layer_{i}"]["W"][mask == 0] == 0.0)
        assert np.any(grads[f"layer_{i}"]["W"][mask == 1] != 0.0)


def test_one_dimension_depends_on_cond_only():
    made = MADE(1, [4], 2, cond_size=2, activation="tanh")
    params = random_params(made, B.host_rng(1))
    cond = np.array([[0.3, -1.2]])
    out0, _ = made.forward(params, np.array([[0.0]]), cond)
    np.testing.assert_array_equal(out0, made.forward(params, np.array([[5.0]]), cond)[0])
    assert not np.allclose(out0, made.forward(params, np.array([[0.0]]), cond + 1.0)[0])


def test_float32_input_keeps_its_dtype():
    made = MADE(3, [6], 2, cond_size=2)
    params = made.init(B.host_rng(0), dtype="float32")
    x, cond = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    out, cache = made.forward(params, x, cond)
    grads, dx, dcond = made.backward(params, cache, np.ones(out.shape, np.float32))
    assert out.dtype == dx.dtype == dcond.dtype == grads["layer_0"]["W"].dtype == np.float32


@given(mades(), seeds)
def test_unchecked_forward_is_the_checked_one_in_each_dtype(made, seed):
    """check=False (a flow layer's call) skips the input checks and nothing else, and the masks
    it keeps from one call to the next are each dtype's own: float32 after float64 and back."""
    rng = B.host_rng(seed)
    x, cond = inputs(made, rng, (3,))
    for dtype in ("float64", "float32", "float64"):
        params = tree_map(lambda a: a.astype(dtype), random_params(made, B.host_rng(seed)))
        xd, cd = x.astype(dtype), None if cond is None else cond.astype(dtype)
        fresh = MADE(made.dim, made.hidden_sizes, made.params_per_dim, made.cond_size, made.order, made.activation,
                     made.in_features)
        expected, _ = fresh.forward(params, xd, cd)
        for check in (True, False):
            out, _ = made.forward(params, xd, cd, check=check)
            assert out.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "x,cond,error,match",
    [
        (np.ones((4, 5)), np.ones((4, 2)), ValueError, r"x must have shape \(\.\.\., 3\)"),
        (np.ones(()), None, ValueError, r"x must have shape"),
        (np.ones((4, 3), dtype=np.int64), np.ones((4, 2)), TypeError, "float32 or float64"),
        (np.ones((4, 3), dtype=np.float32), np.ones((4, 2)), TypeError, "parameters are float64"),
        (np.array([[1.0, np.nan, 0.0]]), np.ones((1, 2)), ValueError, "x contains NaN"),
        (np.ones((4, 3)), None, ValueError, "cond is required"),
        (np.ones((4, 3)), np.ones((4, 3)), ValueError, r"cond must have shape \(4, 2\)"),
        (np.ones((4, 3)), np.ones((5, 2)), ValueError, r"cond must have shape \(4, 2\)"),
        (np.ones((1, 3)), np.array([[np.inf, 0.0]]), ValueError, "cond contains NaN"),
        (np.ones((1, 3)), np.ones((1, 2), dtype=np.float32), TypeError, "parameters are float64"),
    ],
)
def test_forward_rejects_bad_input(x, cond, error, match):
    made = MADE(3, [6], 2, cond_size=2)
    with pytest.raises(error, match=match):
        made.forward(made.init(B.host_rng(0)), x, cond)


def test_cond_without_cond_size_and_bad_dout_raise():
    made = MADE(3, [6], 2)
    params = made.init(B.host_rng(0))
    with pytest.raises(ValueError, match="cond must be None"):
        made.forward(params, np.ones((4, 3)), np.ones((4, 1)))
    out, cache = made.forward(params, np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 3, 2\)"):
        made.backward(params, cache, np.ones((4, 6)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(order=[0, 0, 1]), "permutation"),
        (dict(order=[0, 1]), "permutation"),
        (dict(order=[0, 1, 3]), "permutation"),
        (dict(order=[0.0, 1.0, 2.0]), "permutation"),
        (dict(order=[True, False, 2]), "permutation"),
        (dict(order="backward"), "'forward', 'reversed'"),
        (dict(hidden_sizes=[4, 0]), r"hidden_sizes\[1\]"),
        (dict(dim=0), "dim"),
        (dict(params_per_dim=0), "params_per_dim"),
        (dict(cond_size=-1), "cond_size"),
        (dict(activation="swish"), "unknown activation"),
    ],
)
def test_constructor_rejects_bad_config(kwargs, match):
    config = dict(dim=3, hidden_sizes=[6], params_per_dim=2) | kwargs
    with pytest.raises(ValueError, match=match):
        MADE(**config)
