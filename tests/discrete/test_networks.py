"""Location/scale networks: backward equals autograd, autoregressive ones are exactly causal, the
incremental steps equal the full forward, bad input raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete import BiLSTMNet, DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, MLPNet, make_network
from mini_flows.discrete.networks import (
    AUTOREGRESSIVE_NETWORKS,
    BIPARTITE_NETWORKS,
    TABLE_ROWS,
    LSTMNet,
    TabularNet,
    TransformerNet,
)
from mini_flows.nn.tree import tree_map
from tests.discrete.common import FLOW_CASES, HIDDEN, random_one_hot, seeds
from mini_flows.testing import assert_grads_close, autograd_grads
from mini_flows.testing.compare import tree_floor

cases = pytest.mark.parametrize("kind,name", FLOW_CASES)


def build(kind, name, length, K, scale):
    return make_network(name, length, K, HIDDEN, scale, autoregressive=kind == "autoregressive")


def check_backward(net, seed, batch, positions=None):
    """The hand-written backward against autograd, for parameters and the input h (the logits at
    ``positions`` only, when given)."""
    rng = B.host_rng(seed)
    params = tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), net.init(rng))
    h = rng.standard_normal((batch, net.length, net.vocab_size))
    at = () if positions is None else (positions,)
    (loc, scale_logits), cache = net.forward(params, h, *at)
    assert loc.shape == h[:, positions or slice(None)].shape
    assert (scale_logits is None) == (not net.scale)
    dloc = rng.standard_normal(loc.shape)
    dscale = rng.standard_normal(loc.shape) if net.scale else None
    grads, dh = net.backward(params, cache, dloc, dscale)

    def loss(p, h):
        loc, s = net.forward(p, h, *at)[0]
        return (loc * dloc).sum() + ((s * dscale).sum() if net.scale else 0.0)

    auto = autograd_grads(loss, params, h)
    assert_grads_close((grads, dh), auto, floor=tree_floor(auto))


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


position_slices = st.builds(slice, st.integers(0, 2), st.none() | st.integers(1, 6), st.integers(1, 3))


@pytest.mark.autograd
@pytest.mark.parametrize("name", BIPARTITE_NETWORKS)
@given(K=st.integers(2, 6), length=st.integers(1, 6), batch=st.integers(1, 3), scale=st.booleans(),
       positions=position_slices, seed=seeds)
def test_logits_at_some_positions_backward_matches_autograd(name, K, length, batch, scale, positions, seed):
    check_backward(make_network(name, length, K, HIDDEN, scale, autoregressive=False), seed, batch, positions)


@pytest.mark.parametrize("name", BIPARTITE_NETWORKS)
@given(K=st.integers(2, 6), length=st.integers(1, 9), scale=st.booleans(), positions=position_slices, seed=seeds)
def test_logits_at_some_positions_equal_those_of_the_whole_sequence(name, K, length, scale, positions, seed):
    """A bipartite network asked for some positions gives the full forward's logits there, to
    round-off (the Transformer computes only those rows in its last block)."""
    net = make_network(name, length, K, HIDDEN, scale, autoregressive=False)
    rng = B.host_rng(seed)
    params = net.init(rng)
    h = B.asarray(rng.standard_normal((2, length, K)))
    whole, some = net.forward(params, h)[0], net.forward(params, h, positions)[0]
    for a, b in zip(whole, some):
        if a is not None:
            np.testing.assert_allclose(B.to_numpy(b), B.to_numpy(a)[:, positions], rtol=1e-12, atol=1e-12)


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


def test_the_bipartite_lstm_reads_the_kept_positions_only():
    """Under the flow's mask, what sits at a transformed position cannot reach any logit, and a
    kept position's token reaches the logits on both sides of it (the LSTM runs both ways)."""
    net = make_network("lstm", 6, 3, HIDDEN, autoregressive=False)
    assert isinstance(net, BiLSTMNet)
    params = net.init(B.host_rng(0))
    flow = DiscreteBipartiteFlow(net, keep="even")
    h = np.eye(3)[B.host_rng(1).integers(0, 3, (4, 6))]
    changed = h.copy()
    changed[:, 1] = np.roll(changed[:, 1], 1, axis=-1)  # an odd, transformed position
    mu = [B.to_numpy(flow.inverse({"network": params}, B.asarray(x))[2].mu) for x in (h, changed)]
    assert np.array_equal(mu[0], mu[1])
    logits = [B.to_numpy(net.forward(params, B.asarray(x * [[1], [0], [1], [0], [1], [0]]), slice(1, None, 2))[0][0])
              for x in (h, np.concatenate([h[:, :2], np.roll(h[:, 2:3], 1, axis=-1), h[:, 3:]], axis=1))]
    assert (logits[0][:, 0] != logits[1][:, 0]).all() and (logits[0][:, 2] != logits[1][:, 2]).all()


@cases
def test_networks_reject_bad_input(kind, name):
    net = build(kind, name, 3, 4, False)
    params = net.init(B.host_rng(0))
    with pytest.raises(ValueError, match=r"shape \(\*, 3, 4\)"):
        net.forward(params, B.asarray(np.zeros((2, 3, 5))))
    with pytest.raises(TypeError, match="float32 or float64"):
        net.forward(params, B.asarray(np.zeros((2, 3, 4), dtype=np.int64)))


def test_make_network_rejects_bad_configuration():
    with pytest.raises(ValueError, match="unknown bipartite network 'made'"):
        make_network("made", 3, 4, autoregressive=False)
    with pytest.raises(ValueError, match="unknown autoregressive network 'mlp'"):
        make_network("mlp", 3, 4, autoregressive=True)
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2"):
        make_network("transformer", 3, 1)
    with pytest.raises(ValueError, match="length"):
        make_network("transformer", 0, 4)


STEPPING = {
    "lstm": lambda length, K, scale, layers: LSTMNet(length, K, HIDDEN, scale, num_layers=layers),
    "transformer": lambda length, K, scale, layers: TransformerNet(length, K, HIDDEN, scale, causal=True,
                                                                   num_layers=layers),
}
stepping = pytest.mark.parametrize("name", sorted(STEPPING))


def run_steps(net, params, h):
    """loc, scale : (batch, D, K) from net.step at d = 0..D-1, fed h[:, d - 1] (zeros at d = 0)."""
    xp = B.xp()
    state = net.start(params, h.shape[0])
    h_prev, locs, scales = xp.zeros_like(h[:, 0]), [], []
    for d in range(net.length):
        (loc, scale), state = net.step(params, state, h_prev, d)
        assert loc.shape == h_prev.shape and (scale is None) == (not net.scale)
        locs.append(loc)
        scales.append(scale)
        h_prev = h[:, d]
    return xp.stack(locs, axis=1), xp.stack(scales, axis=1) if net.scale else None


@stepping
@given(K=st.integers(2, 6), length=st.integers(1, 8), batch=st.integers(1, 3), scale=st.booleans(),
       layers=st.integers(1, 2), seed=seeds)
def test_incremental_steps_equal_the_full_forward_at_every_position(name, K, length, batch, scale, layers, seed):
    """net.step's logits at position d equal net.forward's, on real-valued inputs and perturbed
    parameters, to round-off (float64)."""
    net = STEPPING[name](length, K, scale, layers)
    rng = B.host_rng(seed)
    params = tree_map(lambda a: a + B.asarray(0.3 * rng.standard_normal(a.shape), a.dtype), net.init(rng))
    h = B.asarray(rng.standard_normal((batch, length, K)))
    full = net.forward(params, h)[0]
    for step_out, full_out in zip(run_steps(net, params, h), full):
        if full_out is not None:
            np.testing.assert_allclose(B.to_numpy(step_out), B.to_numpy(full_out), rtol=1e-12, atol=1e-13)


@stepping
def test_incremental_steps_keep_float32(name):
    net = STEPPING[name](5, 4, True, 1)
    params = net.init(B.host_rng(0), "float32")
    h = B.asarray(random_one_hot(B.host_rng(1), 2, 5, 4), "float32")
    loc, scale = run_steps(net, params, h)
    assert loc.dtype == scale.dtype == np.float32
    full_loc, full_scale = net.forward(params, h)[0]
    np.testing.assert_allclose(B.to_numpy(loc), B.to_numpy(full_loc), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(B.to_numpy(scale), B.to_numpy(full_scale), rtol=1e-5, atol=1e-6)


class WithoutStep:
    """A network seen without its incremental interface, so the flow recomputes every position."""

    def __init__(self, net):
        self.net = net

    def __getattr__(self, name):
        if name in ("start", "step"):
            raise AttributeError(name)
        return getattr(self.net, name)


@stepping
@given(K=st.integers(2, 27), length=st.integers(1, 12), order=st.sampled_from(["forward", "reversed"]),
       scale=st.booleans(), seed=seeds)
def test_flow_forward_by_steps_equals_forward_by_recomputation(name, K, length, order, scale, seed):
    """The flow's sequential forward gives the same one-hot sequences through net.step as through
    one full network call per position (the path of networks without step, such as MADENet)."""
    net = STEPPING[name](length, K, scale, 1)
    stepped, recomputed = DiscreteAutoregressiveFlow(net, order), DiscreteAutoregressiveFlow(WithoutStep(net), order)
    params = stepped.init(B.host_rng(seed))
    x = B.asarray(random_one_hot(B.host_rng(seed + 1), 4, length, K))
    assert np.array_equal(B.to_numpy(stepped.forward(params, x)[0]), B.to_numpy(recomputed.forward(params, x)[0]))


def test_made_and_bidirectional_transformer_have_no_incremental_form():
    assert not hasattr(make_network("made", 3, 4), "step")
    net = make_network("transformer", 3, 4, HIDDEN, autoregressive=False)
    with pytest.raises(ValueError, match="incremental steps need a causal TransformerNet"):
        net.start(net.init(B.host_rng(0)), 2)


def test_the_tabular_network_looks_its_logits_up_by_the_latest_tokens():
    net = TabularNet(length=4, vocab_size=3, context=2)
    params = net.init(B.host_rng(0))
    tokens = np.array([[2, 1, 0, 2], [0, 0, 1, 1]])
    (loc, scale), _ = net.forward(params, B.asarray(np.eye(3)[tokens]))
    table, bias = B.to_numpy(params["head"]["table"]), B.to_numpy(params["bias"])
    rows = [[0, 2, 2 * 3 + 1, 1 * 3 + 0], [0, 0, 0, 0 * 3 + 1]]  # base-3 numbers of the two latest tokens
    expected = np.stack([[table[d, rows[b][d]] + bias[d] for d in range(4)] for b in range(2)])
    assert scale is None and np.array_equal(B.to_numpy(loc), expected)


def test_the_tabular_networks_context_defaults_to_all_it_can_hold():
    assert TabularNet(5, 5).context == 4 and TabularNet(5, 5).rows == 625
    assert TabularNet(16, 3).context == 7 and TabularNet(16, 3).rows == 3**7 <= TABLE_ROWS
    assert TabularNet(1, 4).context == 0
    with pytest.raises(ValueError, match="context must be at most length - 1 = 3, got 4"):
        TabularNet(4, 3, context=4)
