"""Tran et al.'s toy data: the mixture-of-Gaussians table and samples, Dirichlet tables, addition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows.data.toy import (
    MOG_STATES,
    addition_samples,
    dirichlet_table,
    mog_samples,
    mog_table,
    sample_table,
    table_entropy,
)

seeds = st.integers(0, 2**32 - 1)


def chi_square(samples: np.ndarray, table: np.ndarray, min_expected: float = 5.0) -> tuple[float, int]:
    """Pearson's statistic over cells expected to hold >= min_expected samples, the rest pooled in one
    bin, and its degrees of freedom."""
    n = len(samples)
    counts = np.zeros(table.shape)
    np.add.at(counts, tuple(samples.T), 1)
    expected, observed = n * table.ravel(), counts.ravel()
    big = expected >= min_expected
    e = np.append(expected[big], expected[~big].sum())
    o = np.append(observed[big], observed[~big].sum())
    keep = e > 0
    return float(((o[keep] - e[keep]) ** 2 / e[keep]).sum()), int(keep.sum() - 1)


def test_mog_table_is_normalised_with_the_eight_fold_symmetry_down_to_its_tails():
    table = mog_table()
    assert table.shape == (MOG_STATES, MOG_STATES) and np.all(table > 0)
    assert math.isclose(table.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(table, table.T, rtol=1e-9, atol=0)
    np.testing.assert_allclose(table, np.rot90(table), rtol=1e-9, atol=0)


def test_mog_entropy_is_log_8_plus_that_of_one_discretized_gaussian():
    """Well-separated modes: H = log 8 + log(2 pi e sigma^2 / width^2), up to discretization error."""
    expected = math.log(8) + math.log(2 * math.pi * math.e * 0.01 / 0.05**2)
    assert abs(table_entropy(mog_table()) - expected) < 0.02


def test_mog_table_peaks_on_the_diagonal_modes():
    """The mean (sqrt 2, sqrt 2) lies inside cell floor((sqrt 2 + 2.25) / 0.05) = 73 of both axes,
    so the four diagonal modes' cells hold the most mass; the centre cell holds almost none."""
    table = mog_table()
    peaks = np.argwhere(table > table.max() * (1 - 1e-9))
    assert sorted(map(tuple, peaks.tolist())) == [(16, 16), (16, 73), (73, 16), (73, 73)]
    assert 0 < table[45, 45] < 1e-80


def test_mog_samples_follow_the_exact_table():
    samples = mog_samples(100000, seed=0)
    assert samples.shape == (100000, 2) and samples.dtype == np.int64
    assert samples.min() >= 0 and samples.max() < MOG_STATES
    chi2, df = chi_square(samples, mog_table())
    assert chi2 < df + 6 * math.sqrt(2 * df), f"chi-square {chi2:.0f} on {df} degrees of freedom"


def test_mog_samples_are_seeded():
    assert np.array_equal(mog_samples(50, seed=3), mog_samples(50, seed=3))
    assert not np.array_equal(mog_samples(50, seed=3), mog_samples(50, seed=4))
    assert mog_samples(0, seed=0).shape == (0, 2)


@given(seeds, st.integers(1, 4), st.integers(2, 5), st.floats(0.1, 10.0))
def test_dirichlet_table_has_k_to_the_d_entries_summing_to_one(seed, D, K, alpha):
    table = dirichlet_table(D, K, seed, alpha=alpha)
    assert table.shape == (K,) * D and table.size == K**D
    assert math.isclose(table.sum(), 1.0, rel_tol=1e-12) and np.all(table >= 0)
    assert np.array_equal(table, dirichlet_table(D, K, seed, alpha=alpha))
    assert 0 <= table_entropy(table) <= D * math.log(K) + 1e-12


def test_sample_table_follows_the_table():
    table = dirichlet_table(3, 3, seed=1)
    samples = sample_table(table, 30000, seed=2)
    assert samples.shape == (30000, 3) and samples.dtype == np.int64
    chi2, df = chi_square(samples, table)
    assert chi2 < df + 6 * math.sqrt(2 * df), f"chi-square {chi2:.0f} on {df} degrees of freedom"
    assert sample_table(table, 0, seed=0).shape == (0, 3)


def test_table_entropy_of_uniform_and_point_masses():
    assert math.isclose(table_entropy(np.full((4, 4, 4), 1 / 64)), 3 * math.log(4))
    point = np.zeros((3, 3))
    point[1, 2] = 1.0
    assert table_entropy(point) == 0.0


@given(seeds, st.integers(1, 20), st.integers(2, 10), st.integers(0, 30))
def test_addition_samples_satisfy_the_sum_rule(seed, D, K, n):
    a, b, total = addition_samples(n, seed, D=D, K=K)
    assert a.shape == b.shape == total.shape == (n, D)
    for digits in (a, b, total):
        assert digits.dtype == np.int64 and (n == 0 or (digits.min() >= 0 and digits.max() < K))

    def value(row):
        return sum(int(d) * K ** (D - 1 - i) for i, d in enumerate(row))

    assert all((value(x) + value(y)) % K**D == value(s) for x, y, s in zip(a, b, total))


def test_addition_default_is_ten_decimal_digits_most_significant_first():
    a, b, total = addition_samples(5, seed=0)
    assert a.shape == (5, 10)
    number = lambda row: int("".join(map(str, row)))  # noqa: E731
    assert all((number(x) + number(y)) % 10**10 == number(s) for x, y, s in zip(a, b, total))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dirichlet_table(0, 3, 0), "D must be an integer >= 1"),
        (lambda: dirichlet_table(2, 1, 0), "K must be an integer >= 2"),
        (lambda: dirichlet_table(2, 3, 0, alpha=0.0), "alpha must be a positive number"),
        (lambda: dirichlet_table(30, 10, 0), "entries exceed the limit"),
        (lambda: sample_table(np.array([0.5, 0.6]), 3, 0), "non-negative probabilities summing to 1"),
        (lambda: sample_table(np.array([1.5, -0.5]), 3, 0), "non-negative probabilities summing to 1"),
        (lambda: sample_table(np.array(1.0), 3, 0), "at least one non-empty axis"),
        (lambda: sample_table(np.ones(2) / 2, -1, 0), "n must be an integer >= 0"),
        (lambda: table_entropy(np.array([np.nan, 1.0])), "non-negative probabilities"),
        (lambda: mog_samples(-1, 0), "n must be an integer >= 0"),
        (lambda: addition_samples(-2, 0), "n must be an integer >= 0"),
        (lambda: addition_samples(3, 0, D=0), "D must be an integer >= 1"),
        (lambda: addition_samples(3, 0, K=1), "K must be an integer >= 2"),
    ],
)
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
