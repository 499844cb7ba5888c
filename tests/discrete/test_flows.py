"""Discrete flows: real context-dependent permutations, the gradient reaching location, scale and
input, float32, bad input and configuration, and the training progress that ``with_progress``
hands to the straight-through bound. Bit-exact round trips, bijections on every
configuration and inverse_vjp against autograd are checked by the shared harness,
tests/test_bijections.py."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.discrete import DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, build_model, make_network
from mini_flows.discrete.flows import with_progress
from mini_flows.nn.tree import flatten
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


def relative_distance(a, b) -> float:
    """||a - b|| / ||b||."""
    a, b = B.to_numpy(a), B.to_numpy(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_with_progress_hands_the_fraction_of_training_to_the_flows_for_one_call():
    """fit's batches carry step / steps; during the loss call the flows' bound is the schedule's
    (at the start about the plain estimator's gradient, from half-way the bound's exactly), and
    after it the flows hold no progress. The forward value never changes."""
    model = build_model("bipartite", 5, 4, num_flows=2, network="mlp", hidden=8)
    plain = build_model("bipartite", 5, 4, num_flows=2, network="mlp", hidden=8, spread=None)
    params = model.init(B.host_rng(0))
    params = {**params, **{f"flow_{i}": {"network": {**params[f"flow_{i}"]["network"],
                                                    "bias": 5 * params[f"flow_{i}"]["network"]["bias"]}}
                           for i in range(2)}}  # spread-out logits, which the bound shrinks
    tokens = B.asarray(np.random.default_rng(1).integers(0, 5, size=(16, 4)))
    seen = []
    loss, batches = with_progress(model, lambda step: (seen.append(step), tokens)[1], 10)
    assert batches(3)[1] == 0.3 and seen == [3]
    start, late = loss(params, batches(0)), loss(params, batches(6))
    bounded, unbounded = model.loss_and_grads(params, tokens), plain.loss_and_grads(params, tokens)
    assert start[0] == late[0] == bounded[0] == unbounded[0]
    assert all(flow.progress is None for flow in model.flows)
    for name in ("flow_0", "flow_1"):
        late_grads, bounded_grads = flatten(late[1][name]), flatten(bounded[1][name])
        start_grads, plain_grads = flatten(start[1][name]), flatten(unbounded[1][name])
        for key in bounded_grads:
            np.testing.assert_array_equal(B.to_numpy(late_grads[key]), B.to_numpy(bounded_grads[key]))
            assert relative_distance(start_grads[key], plain_grads[key]) < 1e-2
        assert relative_distance(bounded_grads["network/bias"], plain_grads["network/bias"]) > 0.1


def test_a_loss_that_fails_leaves_no_progress_behind():
    model = build_model("bipartite", 3, 2, num_flows=1, network="mlp", hidden=4)
    loss, batches = with_progress(model, lambda step: B.asarray(np.zeros((0, 2), dtype=int)), 4)
    with pytest.raises(ValueError, match="tokens"):
        loss(model.init(B.host_rng(0)), batches(1))
    assert model.flows[0].progress is None
    with pytest.raises(ValueError, match="steps"):
        with_progress(model, batches, 0)
