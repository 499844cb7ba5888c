"""Location/scale networks: backward equals autograd, autoregressive ones are exactly causal, bad input raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete import MLPNet, make_network
from mini_flows.discrete.networks import AUTOREGRESSIVE_NETWORKS, BIPARTITE_NETWORKS
from mini_flows.nn.tree import tree_map
from tests.discrete.common import FLOW_CASES, HIDDEN, seeds
from tests.gradcheck import assert_grads_close, autograd_grads

cases = pytest.mark.parametrize("kind,name", FLOW_CASES)


def build(kind, name, length, K, scale):
    return make_network(name, length, K, HIDDEN, scale, autoregressive=kind == "autoregressive")


def check_backward(net, seed, batch):
    """The hand-written backward against autograd, for parameters and the input h."""
    rng = B.host_rng(seed)
    params = tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), net.init(rng))
    h = rng.standard_normal((batch, net.length, net.vocab_size))
    (loc, scale_logits), cache = net.forward(params, h)
    assert loc.shape == h.shape
    assert (scale_logits is None) == (not net.scale)
    dloc = rng.standard_normal(loc.shape)
    dscale = rng.standard_normal(loc.shape) if net.scale else None
    grads, dh = net.backward(params, cache, dloc, dscale)

    def loss(p, h):
        loc, s = net.forward(p, h)[0]
        return (loc * dloc).sum() + ((s * dscale).sum() if net.scale else 0.0)

    assert_grads_close((grads, dh), autograd_grads(loss, params, h))


@pytest.mark.autograd
@cases
@given(K=st.integers(2, 6), length=st.integers(1, 5), batch=st.integers(1, 3), scale=st.booleans(), seed=seeds)
def test_backward_matches_autograd(kind, name, K, length, batch, scale, seed):
    check_backward(build(kind, name, length, K, scale), seed, batch)


@pytest.mark.autograd
@pytest.mark.parametrize("num_layers", [0, 2])
@given(K=st.integers(2, 6), length=st.integers(1, 5), batch=st.integers(1, 3), scale=st.booleans(), seed=seeds)
def test_mlp_of_any_depth_backward_matches_autograd(num_layers, K, length, batch, scale, seed):
    check_backward(MLPNet(length, K, HIDDEN, scale, num_layers=num_layers), seed, batch)


@pytest.mark.parametrize("name", AUTOREGRESSIVE_NETWORKS)
@given(K=st.integers(2, 8), length=st.integers(1, 8), cut=st.integers(0, 7), scale=st.booleans(), seed=seeds)
def test_autoregressive_outputs_ignore_the_present_and_future_bit_for_bit(name, K, length, cut, scale, seed):
    """Outputs at positions <= cut are bit-identical whatever h holds at positions >= cut, the
    property that makes the sequential forward of the flow agree with its parallel inverse."""
    cut = min(cut, length - 1)
    net = make_network(name, length, K, HIDDEN, scale, autoregressive=True)
    rng = B.host_rng(seed)
    params = net.init(rng)
    h = rng.standard_normal((2, length, K))
    h2 = h.copy()
    h2[:, cut:] = rng.standard_normal((2, length - cut, K))
    out, out2 = net.forward(params, B.asarray(h))[0], net.forward(params, B.asarray(h2))[0]
    for a, b in zip(out, out2):
        if a is not None:
            assert np.array_equal(B.to_numpy(a)[:, : cut + 1], B.to_numpy(b)[:, : cut + 1])


@pytest.mark.parametrize("name", BIPARTITE_NETWORKS)
def test_bipartite_outputs_see_the_whole_sequence(name):
    net = make_network(name, 4, 3, HIDDEN, autoregressive=False)
    params = net.init(B.host_rng(0))
    h = B.host_rng(1).standard_normal((1, 4, 3))
    h2 = h.copy()
    h2[:, -1] += 1.0
    loc, loc2 = net.forward(params, B.asarray(h))[0][0], net.forward(params, B.asarray(h2))[0][0]
    assert (B.to_numpy(loc)[:, 0] != B.to_numpy(loc2)[:, 0]).any()


@cases
def test_networks_reject_bad_input(kind, name):
    net = build(kind, name, 3, 4, False)
    params = net.init(B.host_rng(0))
    with pytest.raises(ValueError, match=r"shape \(\*, 3, 4\)"):
        net.forward(params, B.asarray(np.zeros((2, 3, 5))))
    with pytest.raises(TypeError, match="float32 or float64"):
        net.forward(params, B.asarray(np.zeros((2, 3, 4), dtype=np.int64)))


def test_make_network_rejects_bad_configuration():
    with pytest.raises(ValueError, match="unknown bipartite network 'lstm'"):
        make_network("lstm", 3, 4, autoregressive=False)
    with pytest.raises(ValueError, match="unknown autoregressive network 'mlp'"):
        make_network("mlp", 3, 4, autoregressive=True)
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2"):
        make_network("transformer", 3, 1)
    with pytest.raises(ValueError, match="length"):
        make_network("transformer", 0, 4)
