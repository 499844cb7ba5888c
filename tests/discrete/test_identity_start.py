"""identity_start: every flow exactly the identity, so the model starts as its base bit for bit;
on_trained_base: a flow model that starts as a trained base alone, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete import DiscreteFlowModel, build_model, identity_start, on_trained_base
from mini_flows.nn.tree import flatten


NETWORKS = [("autoregressive", "lstm"), ("autoregressive", "tabular"), ("bipartite", "mlp"), ("bipartite", "lstm")]


@given(kind_network=st.sampled_from(NETWORKS),
       K=st.integers(2, 5), D=st.integers(2, 4), flows=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_identity_start_makes_the_model_its_base(kind_network, K, D, flows, seed):
    kind, network = kind_network
    model = build_model(kind, K, D, num_flows=flows, network=network)
    start = model.init(B.host_rng(seed))
    before = {name: B.to_numpy(a).copy() for name, a in flatten(start).items()}
    params = identity_start(model, start)
    assert all(np.array_equal(B.to_numpy(a), before[name]) for name, a in flatten(start).items())
    base_alone, base_params = DiscreteFlowModel(model.base), {"base": params["base"]}
    tokens = B.asarray(np.random.default_rng(seed).integers(0, K, size=(8, D)))
    assert np.array_equal(B.to_numpy(model.log_prob(params, tokens)), B.to_numpy(base_alone.log_prob(base_params, tokens)))
    assert np.array_equal(B.to_numpy(model.sample(params, 16, seed=1)),
                          B.to_numpy(base_alone.sample(base_params, 16, seed=1)))


def test_identity_start_needs_a_dense_head():
    model = build_model("autoregressive", 3, 3, num_flows=1, network="made")
    with pytest.raises(ValueError, match="flow 0's network has no dense head to zero"):
        identity_start(model, model.init(B.host_rng(0)))


@given(kind_network=st.sampled_from(NETWORKS), K=st.integers(2, 5), D=st.integers(2, 4), flows=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_on_trained_base_scores_as_that_base_alone(kind_network, K, D, flows, seed):
    kind, network = kind_network
    base_network = "lstm" if kind == "autoregressive" else None
    base_alone = build_model(kind, K, D, num_flows=0, network=network if kind == "bipartite" else "lstm",
                             base_network=base_network)
    trained = base_alone.init(B.host_rng(seed + 1))  # another draw than the flow model's own base
    model = build_model(kind, K, D, num_flows=flows, network=network, base_network=base_network)
    params = on_trained_base(model, trained["base"], B.host_rng(seed))
    assert params["base"] is trained["base"] and set(params) == {"base", *(f"flow_{i}" for i in range(flows))}
    tokens = B.asarray(np.random.default_rng(seed).integers(0, K, size=(8, D)))
    assert np.array_equal(B.to_numpy(model.log_prob(params, tokens)), B.to_numpy(base_alone.log_prob(trained, tokens)))
