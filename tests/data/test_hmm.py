"""The HMM character source: the forward algorithm against brute-force enumeration, normalisation,
sampling frequencies, stability at length 288, and argument errors."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows.data.hmm import HMMSource, categorical, make_hmm, poisson_lengths, uniform_lengths

seeds = st.integers(0, 2**32 - 1)


def random_source(seed: int, n_states: int, vocab_size: int, max_length: int, sparse: bool = False) -> HMMSource:
    """A tiny source with dense random parameters (or, when ``sparse``, some zero emissions)."""
    rng = np.random.default_rng(seed)
    emission = rng.dirichlet(np.ones(vocab_size), size=n_states)
    if sparse:
        emission[:, 0] = 0
        emission /= emission.sum(axis=1, keepdims=True)
    lengths = rng.dirichlet(np.ones(max_length))
    initial, transition = rng.dirichlet(np.ones(n_states)), rng.dirichlet(np.ones(n_states), size=n_states)
    return HMMSource(initial, transition, emission, np.r_[0, lengths])


def brute_force_prob(source: HMMSource, x: np.ndarray) -> float:
    """p(T) sum over every hidden path of pi(s_1) B(s_1, x_1) prod A(s_{t-1}, s_t) B(s_t, x_t)."""
    total = 0.0
    for path in itertools.product(range(len(source.initial)), repeat=len(x)):
        p = source.initial[path[0]] * source.emission[path[0], x[0]]
        for t in range(1, len(x)):
            p *= source.transition[path[t - 1], path[t]] * source.emission[path[t], x[t]]
        total += p
    return source.length_probs[len(x)] * total


def log_space_forward(source: HMMSource, x: np.ndarray) -> float:
    """An independent log-space forward pass: log p(T) + logsumexp recursion over states."""
    with np.errstate(divide="ignore"):
        log_a, log_b, log_pi = np.log(source.transition), np.log(source.emission), np.log(source.initial)
    alpha = log_pi + log_b[:, x[0]]
    for v in x[1:]:
        scores = alpha[:, None] + log_a
        top = scores.max(axis=0)
        alpha = top + np.log(np.exp(scores - top).sum(axis=0)) + log_b[:, v]
    top = alpha.max()
    return math.log(source.length_probs[len(x)]) + top + math.log(np.exp(alpha - top).sum())


@given(seeds, st.integers(1, 3), st.integers(2, 3), st.integers(1, 4), st.booleans())
def test_forward_equals_brute_force_enumeration(seed, n_states, vocab_size, max_length, sparse):
    source = random_source(seed, n_states, vocab_size, max_length, sparse)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, vocab_size, size=rng.integers(1, max_length + 1)) for _ in range(4)]
    note(f"xs={xs}")
    expected = np.array([brute_force_prob(source, x) for x in xs])
    np.testing.assert_allclose(np.exp(source.log_probs(xs)), expected, rtol=1e-10, atol=0)


@given(seeds, st.integers(1, 3), st.integers(2, 3), st.integers(1, 4))
def test_probabilities_of_all_sequences_sum_to_one(seed, n_states, vocab_size, max_length):
    source = random_source(seed, n_states, vocab_size, max_length)
    every = [np.array(x) for T in range(1, max_length + 1) for x in itertools.product(range(vocab_size), repeat=T)]
    assert math.isclose(np.exp(source.log_probs(every)).sum(), 1.0, rel_tol=1e-10)


def test_sampling_frequencies_match_the_exact_probabilities():
    source = random_source(3, n_states=2, vocab_size=2, max_length=3)
    n = 20000
    counts = Counter(tuple(x) for x in source.sample(n, seed=11))
    every = [x for T in range(1, 4) for x in itertools.product(range(2), repeat=T)]
    p = np.exp(source.log_probs([np.array(x) for x in every]))
    observed = np.array([counts[x] for x in every])
    assert observed.sum() == n
    chi2 = ((observed - n * p) ** 2 / (n * p)).sum()
    df = len(every) - 1
    assert chi2 < df + 6 * math.sqrt(2 * df), f"chi-square {chi2:.1f} on {df} degrees of freedom"


def test_length_288_is_finite_and_equals_an_independent_log_space_forward():
    source = make_hmm(seed=5, min_length=288, max_length=288)
    (x,) = source.sample(1, seed=2)
    assert len(x) == 288
    log_p = source.log_prob(x)
    assert np.isfinite(log_p) and log_p < -100
    assert math.isclose(log_p, log_space_forward(source, x), rel_tol=1e-12)


def test_impossible_sequences_score_minus_infinity():
    source = random_source(0, 2, 3, 3, sparse=True)
    log_p = source.log_probs([[0, 1], [1, 1, 1, 1], [1, 2]])
    assert log_p[0] == -np.inf and log_p[1] == -np.inf and np.isfinite(log_p[2])


def test_nll_bits_per_char_is_total_bits_over_total_characters():
    source = make_hmm(seed=1)
    xs = source.sample(50, seed=3)
    expected = -sum(source.log_prob(x) for x in xs) / math.log(2) / sum(map(len, xs))
    assert math.isclose(source.nll_bits_per_char(xs), expected, rel_tol=1e-12)


def test_entropy_estimate_of_an_iid_source_matches_the_exact_entropy():
    """One state and one length: the entropy per character is H(B) exactly."""
    emission = np.array([[0.5, 0.25, 0.125, 0.125]])
    source = HMMSource(np.ones(1), np.ones((1, 1)), emission, uniform_lengths(10, 10))
    estimate, stderr = source.entropy_bits_per_char(2000, seed=0)
    assert abs(estimate - 1.75) < 4 * stderr and 0 < stderr < 0.05


def test_samples_are_seeded_and_in_range():
    source = make_hmm(seed=0, vocab_size=12, min_length=3, max_length=9)
    a, b = source.sample(30, seed=4), source.sample(30, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.dtype == np.int64 and 3 <= len(x) <= 9 and x.min() >= 0 and x.max() < 12 for x in a)
    assert source.sample(0, seed=1) == []
    assert len(source.decode(a[0])) == len(a[0])


def test_categorical_never_draws_a_zero_probability_category():
    probs = np.array([[0.0, 0.5, 0.0, 0.5, 0.0]] * 5000)
    draws = categorical(np.random.default_rng(0), probs)
    assert set(np.unique(draws)) == {1, 3}


def test_length_distributions():
    assert uniform_lengths(2, 4).tolist() == [0, 0, 1 / 3, 1 / 3, 1 / 3]
    p = poisson_lengths(5.0, 1, 20)
    assert math.isclose(p.sum(), 1.0) and p[0] == 0 and math.isclose(p[5] / p[4], 1.0)
    with pytest.raises(ValueError, match="max_length must be an integer >= min_length=5"):
        uniform_lengths(5, 4)
    with pytest.raises(ValueError, match="min_length must be an integer >= 1"):
        uniform_lengths(0, 4)
    with pytest.raises(ValueError, match="mean must be a positive number"):
        poisson_lengths(-1.0, 1, 4)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(initial=np.array([0.5, 0.6])), "initial must hold non-negative probabilities"),
        (dict(initial=np.ones((1, 2)) / 2), "initial must be a 1-D array"),
        (dict(transition=np.ones((3, 3)) / 3), r"transition must have shape \(2, 2\)"),
        (dict(emission=np.array([[1.5, -0.5], [0.5, 0.5]])), "emission must hold non-negative"),
        (dict(length_probs=np.array([0.5, 0.5])), r"length_probs\[0\] must be 0"),
        (dict(length_probs=np.ones((2, 2)) / 2), "length_probs must be a 1-D array"),
    ],
)
def test_invalid_parameters_raise(change, message):
    params = dict(
        initial=np.ones(2) / 2, transition=np.eye(2), emission=np.ones((2, 2)) / 2, length_probs=np.array([0, 1.0])
    )
    params.update(change)
    with pytest.raises(ValueError, match=message):
        HMMSource(**params)


def test_bad_sequences_raise():
    source = make_hmm(seed=0, vocab_size=5)
    with pytest.raises(ValueError, match=r"sequence 1 has tokens outside \[0, 5\)"):
        source.log_probs([[0, 1], [4, 5]])
    with pytest.raises(TypeError, match="sequence 0 must hold integer tokens"):
        source.log_prob(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="sequence 0 must be 1-D"):
        source.log_prob(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="at least one sequence"):
        source.nll_bits_per_char([])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_states=0), "n_states must be an integer >= 1"),
        (dict(vocab_size=1), "vocab_size must be an integer >= 2"),
        (dict(emissions_per_state=30), "emissions_per_state=30 exceeds vocab_size=20"),
        (dict(concentration=0.0), "concentration must be a positive number"),
        (dict(min_length=10, max_length=5), "max_length must be an integer >= min_length=10"),
    ],
)
def test_make_hmm_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_hmm(seed=0, **kwargs)


def test_negative_sample_counts_raise():
    source = make_hmm(seed=0)
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        source.sample(-1, seed=0)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        source.entropy_bits_per_char(1, seed=0)
