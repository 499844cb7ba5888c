"""The chord source: exact log-likelihood against enumeration, normalisation, sampling, errors."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows.data.chords import ChordSource, make_chords
from mini_flows.data.hmm import uniform_lengths
from mini_flows.data.piano import N_KEYS, notes_to_roll

seeds = st.integers(0, 2**32 - 1)
KEYS = (60, 62, 64)


def tiny_source(seed: int, dropout: float, max_length: int = 2) -> ChordSource:
    """Two overlapping chords on three keys, random transitions, T uniform on [1, max_length]."""
    rng = np.random.default_rng(seed)
    initial, transition = rng.dirichlet([1, 1]), rng.dirichlet([1, 1], size=2)
    return ChordSource(((60, 62), (62, 64)), initial, transition, dropout, uniform_lengths(1, max_length))


def every_roll(max_length: int) -> list[np.ndarray]:
    """Every roll of length 1..max_length over the subsets of KEYS."""
    subsets = [s for r in range(4) for s in itertools.combinations(KEYS, r)]
    return [notes_to_roll(list(steps)) for T in range(1, max_length + 1) for steps in itertools.product(subsets, repeat=T)]


def brute_force_prob(source: ChordSource, roll: np.ndarray) -> float:
    """p(T) sum over chord paths of p(path) prod_t prod_keys p(x_tk | c_t)."""
    total = 0.0
    for path in itertools.product(range(len(source.chords)), repeat=len(roll)):
        p = source.initial[path[0]]
        for t in range(1, len(roll)):
            p *= source.transition[path[t - 1], path[t]]
        for t, c in enumerate(path):
            member = source.members[c] == 1
            on = roll[t] == 1
            if np.any(on & ~member):
                p = 0.0
            p *= (1 - source.dropout) ** np.sum(on & member) * source.dropout ** np.sum(~on & member)
        total += p
    return source.length_probs[len(roll)] * total


@given(seeds, st.floats(0.0, 0.9))
def test_log_prob_equals_enumeration_over_chord_paths(seed, dropout):
    source = tiny_source(seed, dropout, max_length=3)
    rolls = every_roll(2)[::7] + [notes_to_roll([(60, 62), (62,), (64,)])]
    expected = [brute_force_prob(source, r) for r in rolls]
    np.testing.assert_allclose(np.exp(source.log_probs(rolls)), expected, rtol=1e-10, atol=1e-300)


@given(seeds, st.floats(0.0, 0.9))
def test_probabilities_of_all_rolls_sum_to_one(seed, dropout):
    source = tiny_source(seed, dropout)
    assert math.isclose(np.exp(source.log_probs(every_roll(2))).sum(), 1.0, rel_tol=1e-10)


def test_sampling_frequencies_match_the_exact_probabilities():
    source = tiny_source(1, dropout=0.3)
    n = 20000
    counts = Counter(r.tobytes() for r in source.sample(n, seed=5))
    rolls = every_roll(2)
    p = np.exp(source.log_probs(rolls))
    observed = np.array([counts[r.tobytes()] for r in rolls])
    assert observed.sum() == n and np.all(observed[p == 0] == 0)
    support = p > 0
    chi2 = ((observed[support] - n * p[support]) ** 2 / (n * p[support])).sum()
    df = support.sum() - 1
    assert chi2 < df + 6 * math.sqrt(2 * df), f"chi-square {chi2:.1f} on {df} degrees of freedom"


def test_without_dropout_the_likelihood_is_that_of_the_chord_chain():
    source = make_chords(seed=2, n_chords=4, dropout=0.0, min_length=5, max_length=12)
    (roll,) = source.sample(1, seed=3)
    path = [next(c for c in range(4) if np.array_equal(source.members[c], step)) for step in roll]
    expected = math.log(source.length_probs[len(roll)] * source.initial[path[0]])
    expected += sum(math.log(source.transition[a, b]) for a, b in zip(path, path[1:]))
    assert math.isclose(source.log_prob(roll), expected, rel_tol=1e-12)


def test_samples_are_seeded_binary_rolls_of_chord_notes():
    source = make_chords(seed=0, dropout=0.2, min_length=4, max_length=8)
    a, b = source.sample(20, seed=1), source.sample(20, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    allowed = source.members.max(axis=0)
    assert all(r.shape[1] == N_KEYS and 4 <= len(r) <= 8 and np.all(r <= allowed) for r in a)
    assert np.all(np.isfinite(source.log_probs(a)))
    assert source.sample(0, seed=0) == []


def test_a_note_outside_every_chord_has_probability_zero():
    source = tiny_source(0, dropout=0.1)
    assert source.log_prob(notes_to_roll([(60, 65)])) == -np.inf


def test_nll_and_entropy_per_step():
    source = make_chords(seed=4, min_length=8, max_length=16)
    rolls = source.sample(40, seed=6)
    expected = -sum(source.log_prob(r) for r in rolls) / sum(map(len, rolls))
    assert math.isclose(source.nll_nats_per_step(rolls), expected, rel_tol=1e-12)
    estimate, stderr = source.entropy_nats_per_step(500, seed=7)
    assert abs(source.nll_nats_per_step(source.sample(500, seed=8)) - estimate) < 8 * stderr
    with pytest.raises(ValueError, match="at least one roll"):
        source.nll_nats_per_step([])


@pytest.mark.parametrize(
    "roll, message",
    [
        (np.zeros((3, 87)), r"roll 0 must have shape \(T, 88\), got \(3, 87\)"),
        (np.full((3, 88), 0.5), "roll 0 must hold only 0 and 1"),
    ],
)
def test_bad_rolls_raise(roll, message):
    with pytest.raises(ValueError, match=message):
        tiny_source(0, 0.1).log_prob(roll)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(chords=()), "at least one chord"),
        (dict(chords=((60,), (110,))), "note 110 is outside the piano range"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(transition=np.ones((2, 2))), "transition must hold non-negative probabilities"),
        (dict(length_probs=np.array([1.0])), r"length_probs\[0\] must be 0"),
    ],
)
def test_invalid_parameters_raise(kwargs, message):
    params = dict(
        chords=((60,), (62,)), initial=np.ones(2) / 2, transition=np.eye(2), dropout=0.1, length_probs=np.array([0, 1.0])
    )
    params.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ChordSource(**params)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_chords=0), "n_chords must be an integer >= 1"),
        (dict(n_chords=8), "n_chords must be at most 7"),
        (dict(stay=1.5), r"stay must be a number in \[0, 1\]"),
        (dict(dropout=-0.1), r"dropout must be a number in \[0, 1\)"),
    ],
)
def test_make_chords_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_chords(seed=0, **kwargs)
