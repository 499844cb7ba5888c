"""Discrete flows: bit-exact round trips, bijections on every configuration, real permutations,
inverse_backward equal to autograd (with the straight-through primitive), bad input raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete import DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, make_network
from mini_flows.nn.tree import tree_map
from tests.discrete.common import (
    FLOW_CASES,
    all_tokens,
    directions,
    enumerable_sizes,
    make_flow,
    one_hot,
    random_one_hot,
    seeds,
)
from tests.gradcheck import assert_grads_close, autograd_grads, vjp_loss

cases = pytest.mark.parametrize("kind,network", FLOW_CASES)


def assert_one_hot(v: np.ndarray) -> None:
    assert set(np.unique(v)) <= {0.0, 1.0} and (v.sum(axis=-1) == 1).all()


@cases
@given(data=st.data(), K=st.integers(2, 64), length=st.integers(1, 32), batch=st.integers(1, 3),
       scale=st.booleans(), seed=seeds)
def test_round_trips_are_bit_exact(kind, network, data, K, length, batch, scale, seed):
    flow, params = make_flow(kind, network, length, K, scale, data.draw(directions(kind)), seed)
    rng = B.host_rng(seed)
    x = random_one_hot(rng, batch, length, K)
    y = flow.forward(params, B.asarray(x))
    assert_one_hot(B.to_numpy(y))
    assert np.array_equal(B.to_numpy(flow.inverse(params, y)[0]), x)
    y = random_one_hot(rng, batch, length, K)
    x = flow.inverse(params, B.asarray(y))[0]
    assert_one_hot(B.to_numpy(x))
    assert np.array_equal(B.to_numpy(flow.forward(params, x)), y)


@cases
@given(data=st.data(), sizes=enumerable_sizes(), scale=st.booleans(), seed=seeds)
def test_flow_is_a_bijection_on_all_configurations(kind, network, data, sizes, scale, seed):
    length, K = sizes
    flow, params = make_flow(kind, network, length, K, scale, data.draw(directions(kind)), seed)
    tokens = all_tokens(length, K)
    x = B.asarray(one_hot(tokens, K))
    for there, back in ((flow.forward, lambda v: flow.inverse(params, v)[0]),
                        (lambda p, v: flow.inverse(p, v)[0], lambda v: flow.forward(params, v))):
        image = there(params, x)
        image_tokens = B.to_numpy(image).argmax(-1)
        assert len(np.unique(image_tokens, axis=0)) == len(tokens)  # onto all K^D configurations
        assert np.array_equal(B.to_numpy(back(image)), B.to_numpy(x))


def context_dependent(x_tokens: np.ndarray, y_tokens: np.ndarray) -> bool:
    """Whether some y_d is not a function of x_d alone (the network's input matters)."""
    for d in range(x_tokens.shape[1]):
        pairs = set(zip(x_tokens[:, d].tolist(), y_tokens[:, d].tolist()))
        if len(pairs) > len(set(x_tokens[:, d].tolist())):
            return True
    return False


@cases
@pytest.mark.parametrize("scale", [False, True])
def test_random_flows_are_real_context_dependent_permutations(kind, network, scale):
    """Freshly initialised flows move tokens, and where they move them depends on the context."""
    tokens = B.host_rng(0).integers(0, 5, size=(300, 8))
    for seed in range(4):
        for direction in (["forward", "reversed"] if kind == "autoregressive" else ["even", "odd"]):
            flow, params = make_flow(kind, network, 8, 5, scale, direction, seed)
            y_tokens = B.to_numpy(flow.forward(params, B.asarray(one_hot(tokens, 5)))).argmax(-1)
            assert not np.array_equal(y_tokens, tokens), "a random flow is the identity"
            assert context_dependent(tokens, y_tokens), "a random flow ignores its network's input"


def noisy(params, rng):
    """Parameters plus noise, so no ReLU input sits exactly at its kink (autograd splits ties)."""
    return tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), params)


@pytest.mark.autograd
@cases
@given(data=st.data(), K=st.integers(2, 8), length=st.integers(1, 5), batch=st.integers(1, 3),
       scale=st.booleans(), seed=seeds)
def test_inverse_backward_matches_autograd(kind, network, data, K, length, batch, scale, seed):
    flow, params = make_flow(kind, network, length, K, scale, data.draw(directions(kind)), seed)
    rng = B.host_rng(seed)
    params = noisy(params, rng)
    y = random_one_hot(rng, batch, length, K)
    x, cache = flow.inverse(params, y)
    dx = rng.standard_normal(x.shape)
    grads, dy = flow.inverse_backward(params, cache, dx)
    auto = autograd_grads(lambda p, y: vjp_loss(flow.inverse(p, y)[0], dx), params, y)
    assert_grads_close((grads, dy), auto)


def test_gradient_reaches_location_scale_and_input():
    flow, params = make_flow("autoregressive", "transformer", 4, 7, True, "forward", 0)
    rng = B.host_rng(1)
    x, cache = flow.inverse(params, B.asarray(random_one_hot(rng, 3, 4, 7)))
    grads, dy = flow.inverse_backward(params, cache, B.asarray(rng.standard_normal(x.shape)))
    head = B.to_numpy(grads["network"]["head"]["W"])
    assert np.abs(head[:, :7]).max() > 0 and np.abs(head[:, 7:]).max() > 0  # location and scale logits
    assert np.abs(B.to_numpy(dy)).max() > 0


@pytest.mark.parametrize("kind", ["autoregressive", "bipartite"])
def test_float32_round_trip_is_exact(kind):
    net = make_network("transformer", 6, 11, 4, True, autoregressive=kind == "autoregressive")
    flow = DiscreteAutoregressiveFlow(net) if kind == "autoregressive" else DiscreteBipartiteFlow(net)
    params = flow.init(B.host_rng(0), dtype="float32")
    x = B.asarray(random_one_hot(B.host_rng(1), 5, 6, 11), "float32")
    y = flow.forward(params, x)
    assert y.dtype == np.float32
    assert np.array_equal(B.to_numpy(flow.inverse(params, y)[0]), B.to_numpy(x))


@pytest.mark.parametrize(
    "make_input,error,match",
    [
        (lambda x: x * 0.5, ValueError, "one-hot"),
        (lambda x: x + np.eye(3)[0], ValueError, "one-hot"),
        (lambda x: np.zeros_like(x), ValueError, "one-hot"),
        (lambda x: x[:, :2], ValueError, r"shape \(\*, 3, 3\)"),
        (lambda x: x[..., :2], ValueError, r"shape \(\*, 3, 3\)"),
        (lambda x: x.astype(np.int64), TypeError, "float32 or float64"),
        (lambda x: x.astype(np.float32), TypeError, "parameters are float64"),
        (lambda x: np.where(x == 1, np.nan, x), ValueError, "NaN"),
    ],
)
@cases
def test_forward_and_inverse_reject_bad_input(kind, network, make_input, error, match):
    flow, params = make_flow(kind, network, 3, 3, False, "forward" if kind == "autoregressive" else "even", 0)
    bad = make_input(random_one_hot(B.host_rng(0), 2, 3, 3))
    with pytest.raises(error, match=match):
        flow.forward(params, B.asarray(bad))
    with pytest.raises(error, match=match):
        flow.inverse(params, B.asarray(bad))


def test_flow_constructors_reject_bad_configuration():
    causal = make_network("transformer", 4, 3, 4, autoregressive=True)
    bidirectional = make_network("transformer", 4, 3, 4, autoregressive=False)
    with pytest.raises(ValueError, match="autoregressive network"):
        DiscreteAutoregressiveFlow(bidirectional)
    with pytest.raises(ValueError, match="bipartite network"):
        DiscreteBipartiteFlow(causal)
    with pytest.raises(ValueError, match="order"):
        DiscreteAutoregressiveFlow(causal, order="backward")
    with pytest.raises(ValueError, match="keep"):
        DiscreteBipartiteFlow(bidirectional, keep="left")
    with pytest.raises(ValueError, match="tau"):
        DiscreteAutoregressiveFlow(causal, tau=0.0)
