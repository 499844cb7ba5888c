"""Categorical bases: normalised, backward equals autograd, sampling matches log_prob, bad input raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete import AutoregressiveCategorical, FactorizedCategorical, make_network
from mini_flows.nn.tree import tree_map
from tests.discrete.common import HIDDEN, all_tokens, enumerable_sizes, one_hot, random_one_hot, seeds
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

BASES = ["factorized", "transformer", "lstm", "made"]


def make_base(name: str, length: int, K: int):
    if name == "factorized":
        return FactorizedCategorical(length, K)
    return AutoregressiveCategorical(make_network(name, length, K, HIDDEN))


@pytest.mark.parametrize("name", BASES)
@given(sizes=enumerable_sizes(max_length=4), seed=seeds)
def test_base_is_normalised(name, sizes, seed):
    length, K = sizes
    base = make_base(name, length, K)
    log_p, _ = base.log_prob(base.init(B.host_rng(seed)), B.asarray(one_hot(all_tokens(length, K), K)))
    assert abs(float(np.exp(B.to_numpy(log_p)).sum()) - 1) < 1e-9


@pytest.mark.autograd
@pytest.mark.parametrize("name", BASES)
@given(K=st.integers(2, 8), length=st.integers(1, 5), batch=st.integers(1, 3), seed=seeds)
def test_backward_matches_autograd(name, K, length, batch, seed):
    base = make_base(name, length, K)
    rng = B.host_rng(seed)
    params = tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), base.init(rng))
    x = random_one_hot(rng, batch, length, K)
    log_p, cache = base.log_prob(params, x)
    assert log_p.shape == (batch,)
    dlog_p = rng.standard_normal(batch)
    grads, dx = base.backward(params, cache, dlog_p)
    auto = autograd_grads(lambda p, x: vjp_loss(base.log_prob(p, x)[0], dlog_p), params, x)
    assert_grads_close((grads, dx), auto)


@pytest.mark.parametrize("name", BASES)
def test_samples_are_one_hot_reproducible_and_follow_log_prob(name):
    length, K, n = 2, 3, 6000
    base = make_base(name, length, K)
    params = base.init(B.host_rng(0))
    x = B.to_numpy(base.sample(params, n, seed=1))
    assert x.shape == (n, length, K) and set(np.unique(x)) <= {0.0, 1.0} and (x.sum(-1) == 1).all()
    assert np.array_equal(x, B.to_numpy(base.sample(params, n, seed=1)))
    assert not np.array_equal(x, B.to_numpy(base.sample(params, n, seed=2)))
    tokens = all_tokens(length, K)
    p = np.exp(B.to_numpy(base.log_prob(params, B.asarray(one_hot(tokens, K)))[0]))
    counts = (x.argmax(-1)[:, None, :] == tokens[None]).all(-1).sum(0)
    # every configuration's count within 5 binomial standard deviations of n p
    assert (np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1).all()


def test_bases_reject_bad_input():
    base = FactorizedCategorical(3, 4)
    params = base.init(B.host_rng(0))
    x = random_one_hot(B.host_rng(0), 2, 3, 4)
    with pytest.raises(ValueError, match="one-hot"):
        base.log_prob(params, B.asarray(0.5 * x))
    with pytest.raises(ValueError, match=r"shape \(\*, 3, 4\)"):
        base.log_prob(params, B.asarray(x[:, :2]))
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2"):
        FactorizedCategorical(3, 1)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        base.sample(params, 0)
    with pytest.raises(ValueError, match="scale=False"):
        AutoregressiveCategorical(make_network("lstm", 3, 4, HIDDEN, scale=True))
    with pytest.raises(ValueError, match="autoregressive network"):
        AutoregressiveCategorical(make_network("mlp", 3, 4, HIDDEN, autoregressive=False))
