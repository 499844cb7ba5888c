"""Dense, embedding, activations, softmax, cross-entropy and Bernoulli NLL: backward equals autograd."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.nn import activations, losses
from mini_flows.nn.layers import Dense, Embedding
from mini_flows.nn.broadcast import unbroadcast
from mini_flows.nn.mlp import MLP
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 6)


@given(seeds, sizes, sizes, st.lists(sizes, min_size=0, max_size=2), st.booleans())
def test_dense_backward_matches_autograd(seed, n_in, n_out, lead, bias):
    rng = B.host_rng(seed)
    layer = Dense(n_in, n_out, bias=bias)
    params = layer.init(rng)
    x = rng.standard_normal((*lead, n_in))
    y, cache = layer.forward(params, x)
    dy = rng.standard_normal(y.shape)
    grads, dx = layer.backward(params, cache, dy)
    auto = autograd_grads(lambda p, x: vjp_loss(layer.forward(p, x)[0], dy), params, x)
    assert_grads_close((grads, dx), auto)


@given(seeds, st.integers(1, 8), sizes, st.lists(sizes, min_size=1, max_size=2))
def test_embedding_backward_matches_autograd(seed, vocab, dim, lead):
    rng = B.host_rng(seed)
    layer = Embedding(vocab, dim)
    params = layer.init(rng)
    tokens = rng.integers(0, vocab, size=lead)
    y, cache = layer.forward(params, tokens)
    dy = rng.standard_normal(y.shape)
    grads, dx = layer.backward(params, cache, dy)
    assert dx is None
    (auto,) = autograd_grads(lambda p: vjp_loss(layer.forward(p, tokens)[0], dy), params)
    assert_grads_close(grads, auto)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
@given(seed=seeds, shape=st.lists(sizes, min_size=1, max_size=3))
def test_activation_backward_matches_autograd(name, seed, shape):
    forward, backward = activations.activation(name)
    rng = B.host_rng(seed)
    x = rng.standard_normal(shape) * 3
    y, cache = forward(x)
    dy = rng.standard_normal(y.shape)
    (auto,) = autograd_grads(lambda x: vjp_loss(forward(x)[0], dy), x)
    assert_grads_close(backward(cache, dy), auto)


@pytest.mark.autograd
def test_relu_derivative_at_the_kink_is_zero_on_both_sides():
    """Hand-written and autograd agree at x = 0 exactly (issue 16, item 15)."""
    x, dy = np.array([-1.0, 0.0, 0.0, 2.0]), np.array([1.0, 1.0, -3.0, 1.0])
    y, cache = activations.relu_forward(x)
    (auto,) = autograd_grads(lambda x: vjp_loss(activations.relu_forward(x)[0], dy), x)
    assert np.array_equal(y, [0.0, 0.0, 0.0, 2.0])
    assert np.array_equal(activations.relu_backward(cache, dy), [0.0, 0.0, 0.0, 1.0])
    assert np.array_equal(auto, [0.0, 0.0, 0.0, 1.0])
    assert np.isnan(activations.relu_forward(np.array([np.nan]))[0]).all()
    with np.errstate(invalid="ignore"):  # -inf * 0
        assert np.isnan(activations.relu_forward(np.array([-np.inf]))[0]).all()  # an overflow is reported, not zeroed


@pytest.mark.parametrize(
    "forward,backward",
    [(losses.softmax_forward, losses.softmax_backward), (losses.log_softmax_forward, losses.log_softmax_backward)],
)
@given(seed=seeds, shape=st.lists(sizes, min_size=1, max_size=3))
def test_softmax_backward_matches_autograd(forward, backward, seed, shape):
    rng = B.host_rng(seed)
    x = rng.standard_normal(shape) * 5
    y, cache = forward(x)
    dy = rng.standard_normal(y.shape)
    (auto,) = autograd_grads(lambda x: vjp_loss(forward(x)[0], dy), x)
    assert_grads_close(backward(cache, dy), auto)


@given(seeds, st.integers(1, 7), st.lists(sizes, min_size=1, max_size=2))
def test_cross_entropy_backward_matches_autograd(seed, K, lead):
    rng = B.host_rng(seed)
    logits = rng.standard_normal((*lead, K)) * 4
    targets = rng.integers(0, K, size=lead)
    nll, cache = losses.cross_entropy_forward(logits, targets)
    np.testing.assert_allclose(nll, -np.log(np.take_along_axis(
        np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), targets[..., None], -1)[..., 0]), rtol=1e-10, atol=1e-13)
    dnll = rng.standard_normal(nll.shape)
    (auto,) = autograd_grads(lambda z: vjp_loss(losses.cross_entropy_forward(z, targets)[0], dnll), logits)
    assert_grads_close(losses.cross_entropy_backward(cache, dnll), auto)


@given(seeds, st.integers(1, 7), st.lists(sizes, min_size=1, max_size=2))
def test_bernoulli_nll_backward_matches_autograd(seed, K, lead):
    rng = B.host_rng(seed)
    logits = rng.standard_normal((*lead, K)) * 4
    targets = rng.integers(0, 2, size=(*lead, K)).astype(float)
    nll, cache = losses.bernoulli_nll_forward(logits, targets)
    p_on = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(nll, -np.log(np.where(targets == 1, p_on, 1 - p_on)).sum(-1), rtol=1e-10, atol=1e-13)
    dnll = rng.standard_normal(nll.shape)
    (auto,) = autograd_grads(lambda z: vjp_loss(losses.bernoulli_nll_forward(z, targets)[0], dnll), logits)
    assert_grads_close(losses.bernoulli_nll_backward(cache, dnll), auto)


def test_bernoulli_nll_is_stable_for_huge_logits_and_checks_shapes():
    nll, _ = losses.bernoulli_nll_forward(B.asarray([[1e300, -1e300]]), B.asarray([[1.0, 0.0]]))
    assert B.to_numpy(nll)[0] == 0.0
    with pytest.raises(ValueError, match="shape"):
        losses.bernoulli_nll_forward(np.zeros((2, 3)), np.zeros((2, 2)))


def test_log_softmax_is_stable_for_huge_logits():
    logp = losses.log_softmax(B.asarray([[1e300, 0.0, -1e300]]))
    assert np.isfinite(B.to_numpy(logp)[0, :2]).all() and B.to_numpy(logp)[0, 0] == 0.0


def test_float32_input_keeps_its_dtype():
    layer = Dense(3, 2)
    params = layer.init(B.host_rng(0), dtype="float32")
    y, _ = layer.forward(params, B.asarray(np.ones((4, 3)), "float32"))
    assert y.dtype == np.float32


@pytest.mark.parametrize(
    "make_input,error,match",
    [
        (lambda: np.ones((4, 5)), ValueError, r"shape \(\.\.\., 3\)"),
        (lambda: np.ones((4, 3), dtype=np.int64), TypeError, "float32 or float64"),
        (lambda: np.ones((4, 3), dtype=np.float32), TypeError, "parameters are float64"),
        (lambda: np.array([[1.0, np.nan, 0.0]]), ValueError, "NaN"),
    ],
)
def test_dense_rejects_bad_input(make_input, error, match):
    layer = Dense(3, 2)
    with pytest.raises(error, match=match):
        layer.forward(layer.init(B.host_rng(0)), make_input())


def test_embedding_and_cross_entropy_reject_bad_tokens():
    emb = Embedding(4, 2)
    params = emb.init(B.host_rng(0))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        emb.forward(params, np.array([0, 4]))
    with pytest.raises(TypeError, match="integer"):
        emb.forward(params, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        losses.cross_entropy_forward(np.zeros((2, 3, 4)), np.zeros((2, 2), dtype=int))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_through_exp_equals_the_tanh_form(dtype):
    """x / (1 + exp(-2u)) is x/2 (1 + tanh u) to round-off, also past the cap on exp (x < -10 in
    float32, -21 in float64), where both are 0 to round-off and no overflow warning is raised."""
    x = np.linspace(-40, 12, 10001).astype(dtype)
    x64 = x.astype("float64")
    tanh_form = 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = activations.gelu_forward(x)
        dx = activations.gelu_backward(cache, np.ones_like(x))
    assert y.dtype == dx.dtype == np.dtype(dtype) and np.isfinite(dx).all()
    assert (np.abs(y - tanh_form) <= 4 * np.finfo(dtype).eps * np.maximum(np.abs(x64), 1)).all()


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match="gelu"):
        activations.activation("swish")


@given(seeds, sizes, st.lists(sizes, max_size=2), sizes, st.sampled_from(sorted(activations.ACTIVATIONS)))
def test_mlp_backward_matches_autograd(seed, n_in, hidden, n_out, act):
    rng = B.host_rng(seed)
    mlp = MLP(n_in, hidden, n_out, act)
    params = mlp.init(rng)  # zero biases: ReLU inputs land exactly on the kink, where both sides say 0
    x = rng.standard_normal((3, n_in))
    y, cache = mlp.forward(params, x)
    assert y.shape == (3, n_out)
    dy = rng.standard_normal(y.shape)
    auto = autograd_grads(lambda p, x: vjp_loss(mlp.forward(p, x)[0], dy), params, x)
    assert_grads_close(mlp.backward(params, cache, dy), auto)


@given(seeds, sizes, st.lists(sizes, max_size=2), sizes)
def test_mlp_unchecked_forward_is_the_checked_one(seed, n_in, hidden, n_out):
    rng = B.host_rng(seed)
    mlp = MLP(n_in, hidden, n_out, "tanh")
    params = mlp.init(rng)
    x = rng.standard_normal((2, 3, n_in))
    (y, cache), (y_unchecked, cache_unchecked) = mlp.forward(params, x), mlp.forward(params, x, check=False)
    np.testing.assert_array_equal(y, y_unchecked)
    dy = rng.standard_normal(y.shape)
    grads, dx = mlp.backward(params, cache, dy)
    grads_unchecked, dx_unchecked = mlp.backward(params, cache_unchecked, dy)
    np.testing.assert_array_equal(dx, dx_unchecked)
    for name in grads:
        for key in grads[name]:
            np.testing.assert_array_equal(grads[name][key], grads_unchecked[name][key])
    with pytest.raises(TypeError, match="x is float32 but the parameters are float64"):
        mlp.forward(params, x.astype(np.float32))


@given(seeds, st.lists(st.integers(1, 3), min_size=1, max_size=3), st.data())
def test_unbroadcast_is_the_gradient_of_broadcasting(seed, shape, data):
    small = [data.draw(st.sampled_from([1, n])) for n in shape][data.draw(st.integers(0, len(shape))):]
    rng = B.host_rng(seed)
    a, g = rng.standard_normal(small), rng.standard_normal(shape)
    (auto,) = autograd_grads(lambda a: vjp_loss(a + np.zeros(shape), g), a)
    assert_grads_close(unbroadcast(g, tuple(small)), auto)
