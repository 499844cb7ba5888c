"""The addition experiment's conditional networks and base: hand-written backward passes against
autograd, causality, and p(y | a, b) summing to 1 over every y."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.experiments.addition import (
    ContextFactorized,
    ContextLSTMNet,
    ContextMLPNet,
    build,
    condition,
    heldout_nll,
)
from mini_flows.experiments.evaluation import all_sequences
from mini_flows.nn.tree import tree_map
from mini_flows.testing import assert_grads_close, autograd_grads

seeds = st.integers(0, 2**32 - 1)
sizes = dict(K=st.integers(2, 4), length=st.integers(1, 4), C=st.integers(1, 5), batch=st.integers(1, 3), seed=seeds)


def perturbed(block, rng):
    return tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), block.init(rng))


@pytest.mark.autograd
@pytest.mark.parametrize("kind", ["lstm", "lstm reversed", "mlp", "mlp at odd positions"])
@given(**sizes)
def test_network_backward_matches_autograd(kind, K, length, C, batch, seed):
    rng = B.host_rng(seed)
    at = ()
    if kind.startswith("mlp"):
        net = ContextMLPNet(length, K, C, hidden=4)
        at = (slice(1, None, 2),) if "odd" in kind else ()
    else:
        net = ContextLSTMNet(length, K, C, 4, reverse="reversed" in kind)
    params = perturbed(net, rng)
    net.context = rng.standard_normal((batch, length, C))
    h = rng.standard_normal((batch, length, K))
    (loc, scale), cache = net.forward(params, h, *at)
    assert loc.shape == h[:, at[0] if at else slice(None)].shape and scale is None
    dloc = rng.standard_normal(loc.shape)
    grads, dh = net.backward(params, cache, dloc)
    auto = autograd_grads(lambda p, h: (net.forward(p, h, *at)[0][0] * dloc).sum(), params, h)
    assert_grads_close((grads, dh), auto)


@pytest.mark.autograd
@given(**sizes)
def test_factorized_base_backward_matches_autograd(K, length, C, batch, seed):
    rng = B.host_rng(seed)
    base = ContextFactorized(length, K, C)
    params = perturbed(base, rng)
    base.context = rng.standard_normal((batch, length, C))
    x = np.eye(K)[rng.integers(0, K, size=(batch, length))]
    log_p, cache = base.log_prob(params, x)
    dlog_p = rng.standard_normal(batch)
    grads, dx = base.backward(params, cache, dlog_p)
    assert_grads_close((grads, dx), autograd_grads(lambda p, x: (base.log_prob(p, x)[0] * dlog_p).sum(), params, x))


@given(K=st.integers(2, 4), length=st.integers(2, 5), cut=st.integers(0, 4), seed=seeds)
def test_lstm_network_outputs_ignore_the_present_and_future_bit_for_bit(K, length, cut, seed):
    rng = B.host_rng(seed)
    cut = min(cut, length - 1)
    net = ContextLSTMNet(length, K, 3, 4)
    params = net.init(rng)
    net.context = B.asarray(rng.standard_normal((2, length, 3)))
    h = rng.standard_normal((2, length, K))
    changed = h.copy()
    changed[:, cut:] = rng.standard_normal((2, length - cut, K))
    loc, _ = net.forward(params, B.asarray(h))[0]
    loc_changed, _ = net.forward(params, B.asarray(changed))[0]
    assert np.array_equal(B.to_numpy(loc)[:, :cut + 1], B.to_numpy(loc_changed)[:, :cut + 1])


@pytest.mark.parametrize("kind,flows", [("autoregressive", 0), ("autoregressive", 1), ("autoregressive", 2),
                                        ("bipartite", 0), ("bipartite", 2)])
@given(seed=seeds)
def test_conditional_model_sums_to_one_over_every_sum(kind, flows, seed):
    rng = np.random.default_rng(seed)
    length, K = 2, 3
    model = build(kind, flows, length=length, vocab_size=K, hidden=4)
    params = model.init(B.host_rng(seed % 1000))
    y = all_sequences(length, K)
    a = np.repeat(rng.integers(0, K, size=(1, length)), K**length, axis=0)
    b = np.repeat(rng.integers(0, K, size=(1, length)), K**length, axis=0)
    condition(model, a, b)
    total = float(B.xp().exp(model.log_prob(params, y)).sum())
    assert abs(total - 1) < 1e-12


def test_networks_need_a_context_of_the_batch():
    model = build("autoregressive", 1, length=3, vocab_size=2, hidden=4)
    params = model.init(B.host_rng(0))
    y = B.asarray([[0, 1, 1]])
    with pytest.raises(ValueError, match="condition"):
        model.log_prob(params, y)
    condition(model, [[1, 0, 0], [0, 0, 1]], [[1, 1, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="condition"):
        model.log_prob(params, y)


def test_heldout_nll_does_not_depend_on_the_chunk():
    rng = np.random.default_rng(0)
    a, b, y = (B.asarray(rng.integers(0, 3, size=(7, 3))) for _ in range(3))
    model = build("bipartite", 2, length=3, vocab_size=3, hidden=4)
    params = model.init(B.host_rng(0))
    assert abs(heldout_nll(model, params, a, b, y, chunk=3) - heldout_nll(model, params, a, b, y)) < 1e-12
