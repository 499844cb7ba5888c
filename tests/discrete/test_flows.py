"""Discrete flows: real context-dependent permutations, the gradient reaching location, scale and
input, float32, bad input and configuration. Bit-exact round trips, bijections on every
configuration and inverse_vjp against autograd are checked by the shared harness,
tests/test_bijections.py."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.discrete import DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, make_network
from tests.discrete.common import FLOW_CASES, make_flow, one_hot, random_one_hot

cases = pytest.mark.parametrize("kind,network", FLOW_CASES)


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
            y_tokens = B.to_numpy(flow.forward(params, B.asarray(one_hot(tokens, 5)))[0]).argmax(-1)
            assert not np.array_equal(y_tokens, tokens), "a random flow is the identity"
            assert context_dependent(tokens, y_tokens), "a random flow ignores its network's input"


def test_gradient_reaches_location_scale_and_input():
    flow, params = make_flow("autoregressive", "transformer", 4, 7, True, "forward", 0)
    rng = B.host_rng(1)
    x, logdet, cache = flow.inverse(params, B.asarray(random_one_hot(rng, 3, 4, 7)))
    grads, dy, _ = flow.inverse_vjp(params, cache, B.asarray(rng.standard_normal(x.shape)), logdet)
    head = B.to_numpy(grads["network"]["head"]["W"])
    assert np.abs(head[:, :7]).max() > 0 and np.abs(head[:, 7:]).max() > 0  # location and scale logits
    assert np.abs(B.to_numpy(dy)).max() > 0


@pytest.mark.parametrize("kind", ["autoregressive", "bipartite"])
def test_float32_round_trip_is_exact(kind):
    net = make_network("transformer", 6, 11, 4, True, autoregressive=kind == "autoregressive")
    flow = DiscreteAutoregressiveFlow(net) if kind == "autoregressive" else DiscreteBipartiteFlow(net)
    params = flow.init(B.host_rng(0), dtype="float32")
    x = B.asarray(random_one_hot(B.host_rng(1), 5, 6, 11), "float32")
    y, logdet, _ = flow.forward(params, x)
    assert y.dtype == logdet.dtype == np.float32
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
