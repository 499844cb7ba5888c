"""The one categorical sampler: the inverse-CDF rule at the boundaries, clipping against round-off,
and every caller (discrete bases, the latent emission, the length prior) drawing through it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.discrete.one_hot import sample_categorical
from mini_flows.latent.emission import draw
from mini_flows.latent.length_prior import LengthPrior
from mini_flows.nn.sampling import categorical_draw


def test_a_uniform_on_a_cdf_boundary_takes_the_next_token_and_round_off_is_clipped():
    probs = B.asarray([0.25, 0.25, 0.5])
    u = B.asarray([0.0, 0.2499, 0.25, 0.5, 0.75, 0.9999999, 1.0])
    assert B.to_numpy(categorical_draw(probs, u)).tolist() == [0, 0, 1, 2, 2, 2, 2]
    short = B.asarray([0.5, 0.5 - 1e-12])  # sums to just under 1
    assert int(categorical_draw(short, B.asarray(1 - 1e-13))) == 1


@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_every_caller_draws_the_same_tokens_from_the_same_uniforms(seed, K):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((50, K))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    u = rng.random(50)
    tokens = B.to_numpy(categorical_draw(B.asarray(probs), B.asarray(u)))
    expected = (np.cumsum(probs, -1) <= u[:, None]).sum(-1).clip(max=K - 1)
    assert np.array_equal(tokens, expected)
    assert np.array_equal(B.to_numpy(sample_categorical(B.asarray(probs), B.asarray(u))).argmax(-1), tokens)
    assert np.array_equal(B.to_numpy(draw(B.asarray(logits), B.asarray(u), "categorical")), tokens)


def test_the_length_prior_samples_through_the_same_rule():
    prior = LengthPrior(3, [1, 0, 5])  # add-one smoothing: p(T) = (2, 1, 6) / 9
    lengths = B.to_numpy(prior.sample(20000, B.rng(0)))
    assert set(np.unique(lengths)) == {1, 2, 3}
    np.testing.assert_allclose(np.bincount(lengths)[1:] / 20000, [2 / 9, 1 / 9, 6 / 9], atol=0.015)
