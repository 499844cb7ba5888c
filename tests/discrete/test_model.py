"""DiscreteFlowModel and build_model: normalised, loss gradient equals autograd through flows and base,
sampling matches log_prob and is reproducible, bad input raises."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.checkpoint import checkpoint_config, save_checkpoint
from mini_flows.discrete import (
    AutoregressiveCategorical,
    DiscreteAutoregressiveFlow,
    DiscreteBipartiteFlow,
    DiscreteFlowModel,
    FactorizedCategorical,
    build_model,
    make_network,
)
from mini_flows.nn.tree import tree_map
from mini_flows.optim import Adam
from tests.discrete.common import FLOW_CASES, HIDDEN, all_tokens, enumerable_sizes, seeds
from mini_flows.testing import assert_grads_close, autograd_grads
from mini_flows.testing.compare import tree_floor

cases = pytest.mark.parametrize("kind,network", FLOW_CASES)


@cases
@given(sizes=enumerable_sizes(max_length=4), num_flows=st.integers(0, 2), scale=st.booleans(), seed=seeds)
def test_model_is_normalised(kind, network, sizes, num_flows, scale, seed):
    """sum over all K^D configurations of p(y) = 1 for random, untrained models."""
    length, K = sizes
    model = build_model(kind, K, length, num_flows, scale, HIDDEN, network)
    log_p = B.to_numpy(model.log_prob(model.init(B.host_rng(seed)), B.asarray(all_tokens(length, K))))
    assert abs(float(np.exp(log_p).sum()) - 1) < 1e-9


@pytest.mark.autograd
@cases
@given(K=st.integers(2, 6), length=st.integers(1, 4), batch=st.integers(1, 4), num_flows=st.integers(1, 2),
       scale=st.booleans(), seed=seeds)
def test_loss_gradient_matches_autograd(kind, network, K, length, batch, num_flows, scale, seed):
    """The hand-written backward through every flow and the base equals autograd on the same
    forward code, where the straight-through argmax is an autograd primitive with the same rule."""
    model = build_model(kind, K, length, num_flows, scale, HIDDEN, network)
    params = model.init(B.host_rng(seed))
    rng = B.host_rng(seed)
    params = tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), params)
    tokens = rng.integers(0, K, size=(batch, length))
    loss, grads, _ = model.loss_and_grads(params, tokens)
    assert loss == pytest.approx(-float(np.mean(model.log_prob(params, tokens))), rel=1e-12)
    (auto,) = autograd_grads(lambda p: -model.forward(p, tokens)[0].mean(), params)
    assert_grads_close(grads, auto, floor=tree_floor(auto))


@pytest.mark.parametrize("kind,network", [("autoregressive", "lstm"), ("bipartite", "mlp")])
def test_samples_are_valid_reproducible_and_follow_log_prob(kind, network):
    """Sampling (base, then each flow forward) and log_prob (each flow inverse, then the base)
    describe one distribution: sample frequencies match exp(log_prob)."""
    length, K, n = 2, 3, 6000
    model = build_model(kind, K, length, num_flows=2, scale=True, hidden=HIDDEN, network=network)
    params = model.init(B.host_rng(3))
    y = B.to_numpy(model.sample(params, n, seed=5))
    assert y.shape == (n, length) and np.issubdtype(y.dtype, np.integer) and y.min() >= 0 and y.max() < K
    assert np.array_equal(y, B.to_numpy(model.sample(params, n, seed=5)))
    assert not np.array_equal(y, B.to_numpy(model.sample(params, n, seed=6)))
    tokens = all_tokens(length, K)
    p = np.exp(B.to_numpy(model.log_prob(params, B.asarray(tokens))))
    counts = (y[:, None, :] == tokens[None]).all(-1).sum(0)
    assert (np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1).all()


def test_build_model_follows_the_paper_setups():
    ar = build_model("autoregressive", 5, 4, num_flows=3, hidden=HIDDEN)
    assert isinstance(ar.base, AutoregressiveCategorical)
    assert [f.order for f in ar.flows] == ["reversed", "forward", "reversed"]
    assert all(isinstance(f, DiscreteAutoregressiveFlow) for f in ar.flows)
    bi = build_model("bipartite", 5, 4, num_flows=3, hidden=HIDDEN, network="mlp")
    assert isinstance(bi.base, FactorizedCategorical)
    assert [f.keep for f in bi.flows] == ["even", "odd", "even"]
    assert sorted(bi.init(B.host_rng(0))) == ["base", "flow_0", "flow_1", "flow_2"]
    assert [f.tau for f in ar.flows + bi.flows] == [0.1] * 6
    assert build_model("bipartite", 5, 4, hidden=HIDDEN, tau=0.5).flows[0].tau == 0.5
    same = build_model("bipartite", 5, 4, num_flows=3, hidden=HIDDEN, network="mlp")
    tokens = B.asarray(all_tokens(4, 5)[:50])
    assert np.array_equal(B.to_numpy(bi.log_prob(bi.init(B.host_rng(1)), tokens)),
                          B.to_numpy(same.log_prob(same.init(B.host_rng(1)), tokens)))


def test_a_model_rebuilds_from_its_json_configuration():
    model = build_model("autoregressive", 5, 4, num_flows=2, scale=True, hidden=HIDDEN, network="lstm", tau=0.2)
    config = json.loads(json.dumps(model.config))
    again = DiscreteFlowModel.from_config(config)
    assert again.config == model.config and [f.order for f in again.flows] == [f.order for f in model.flows]
    tokens = B.asarray(all_tokens(4, 5)[:20])
    assert np.array_equal(B.to_numpy(model.log_prob(model.init(B.host_rng(2)), tokens)),
                          B.to_numpy(again.log_prob(again.init(B.host_rng(2)), tokens)))
    assert DiscreteFlowModel(FactorizedCategorical(3, 4)).config is None


def test_float32_model():
    model = build_model("autoregressive", 4, 3, scale=True, hidden=HIDDEN)
    params = model.init(B.host_rng(0), "float32")
    tokens = B.asarray(all_tokens(3, 4))
    log_p = model.log_prob(params, tokens)
    assert log_p.dtype == np.float32
    assert abs(float(np.exp(B.to_numpy(log_p).astype(np.float64)).sum()) - 1) < 1e-5
    loss, grads, _ = model.loss_and_grads(params, tokens)
    assert all(g.dtype == np.float32 for g in tree_leaves(grads))
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        model.init(B.host_rng(0), "int32")


def tree_leaves(tree):
    return [leaf for value in tree.values() for leaf in (tree_leaves(value) if isinstance(value, dict) else [value])]


@pytest.mark.parametrize(
    "tokens,error,match",
    [
        (np.array([[0, 1, 4]]), ValueError, r"\[0, 4\)"),
        (np.array([[0, -1, 2]]), ValueError, r"\[0, 4\)"),
        (np.array([[0.0, 1.0, 2.0]]), TypeError, "integer"),
        (np.array([[0, 1]]), ValueError, r"shape \(\*, 3\)"),
        (np.array([0, 1, 2]), ValueError, r"shape \(\*, 3\)"),
    ],
)
@pytest.mark.parametrize("kind", ["autoregressive", "bipartite"])
def test_model_rejects_bad_tokens(kind, tokens, error, match):
    model = build_model(kind, 4, 3, hidden=HIDDEN, network="transformer")
    params = model.init(B.host_rng(0))
    with pytest.raises(error, match=match):
        model.log_prob(params, B.asarray(tokens))
    with pytest.raises(error, match=match):
        model.loss_and_grads(params, B.asarray(tokens))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kind="ising"), "unknown kind 'ising'"),
        (dict(kind="bipartite", network="made"), "unknown bipartite network 'made'"),
        (dict(kind="autoregressive", network="mlp"), "unknown autoregressive network 'mlp'"),
        (dict(kind="autoregressive", vocab_size=1), "vocab_size must be an integer >= 2"),
        (dict(kind="autoregressive", length=0), "length must be an integer >= 1"),
        (dict(kind="bipartite", num_flows=-1), "num_flows must be an integer >= 0"),
        (dict(kind="autoregressive", base_network="mlp"), "unknown base network 'mlp'"),
        (dict(kind="bipartite", base_network="lstm"), "base_network applies to kind='autoregressive' only"),
        (dict(kind="bipartite", tau=0.0), "tau must be a finite number > 0"),
    ],
)
def test_build_model_rejects_bad_configuration(kwargs, match):
    args = dict(kind="autoregressive", vocab_size=4, length=3, hidden=HIDDEN) | kwargs
    with pytest.raises(ValueError, match=match):
        build_model(**args)


def test_model_rejects_mismatched_flows():
    flow = DiscreteBipartiteFlow(make_network("mlp", 3, 5, HIDDEN, autoregressive=False))
    with pytest.raises(ValueError, match=r"flow 0 has \(length, vocab_size\) = \(3, 5\)"):
        DiscreteFlowModel(FactorizedCategorical(3, 4), [flow])
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        model = DiscreteFlowModel(FactorizedCategorical(3, 4))
        model.sample(model.init(B.host_rng(0)), 0)


def test_numpy_scalar_arguments_give_a_configuration_a_checkpoint_can_save(tmp_path):
    """NumPy integers and floats become Python ones in ``config`` (issue 24, item 7: np.int64(5) was
    accepted, trained, and then save_checkpoint failed because int64 is not JSON)."""
    model = build_model("bipartite", np.int64(5), np.int32(4), num_flows=np.int64(1), hidden=np.uint8(HIDDEN),
                        network="mlp", tau=np.float32(0.25), spread=np.float32(0.5))
    plain = dict(vocab_size=5, length=4, num_flows=1, hidden=HIDDEN, tau=0.25, spread=0.5)
    assert {key: model.config[key] for key in plain} == plain
    assert all(type(model.config[key]) is type(value) for key, value in plain.items())
    params = model.init(B.host_rng(0))
    save_checkpoint(tmp_path / "model.npz", params, Adam(), config=model.config)
    assert checkpoint_config(tmp_path / "model.npz") == model.config
    assert DiscreteFlowModel.from_config(json.loads(json.dumps(model.config))).config == model.config


@pytest.mark.parametrize("change,match", [
    (lambda p: {}, r"params has no 'base' \(it has \[\]"),
    (lambda p: {key: p[key] for key in ("base", "flow_0")}, r"params has no 'flow_1' \(it has \['base', 'flow_0'\]"),
    (lambda p: {**p, "flow_0": {}}, r"params/flow_0 has no 'network'"),
    (lambda p: {**p, "flow_2": p["flow_1"]}, r"params has an unexpected 'flow_2'"),
    (lambda p: {**p, "flow_1": {"network": {**p["flow_1"]["network"], "bias": 0.5}}},
     r"params/flow_1/network/bias must be an array, got float"),
    (lambda p: [p], "params must be a parameter tree .*got list"),
    (lambda p: build_model("bipartite", 5, 4, num_flows=2, hidden=HIDDEN + 1, network="mlp").init(B.host_rng(0)),
     r"params/flow_0/network/\w+/\w+ has shape \(.*\), the model's is .*: these are the parameters of another model"),
])
def test_params_of_another_shape_of_tree_are_named(change, match):
    """Issue 24, item 10: log_prob({}, tokens) raised StopIteration (and a missing flow KeyError)."""
    model = build_model("bipartite", 5, 4, num_flows=2, hidden=HIDDEN, network="mlp")
    params = change(model.init(B.host_rng(0)))
    for call in (lambda: model.log_prob(params, B.asarray(all_tokens(4, 5)[:3])), lambda: model.sample(params, 2)):
        with pytest.raises(ValueError, match=match):
            call()
