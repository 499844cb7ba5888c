"""Potts and Ising lattices: edges, energies, exact enumeration, and Metropolis-Hastings against it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows.data import table_entropy
from mini_flows.data.lattice import (
    _colour_classes,
    _neighbours,
    ising_energy,
    ising_entropy,
    ising_exact,
    ising_one_sweep_entropy,
    ising_samples,
    lattice_edges,
    potts_energy,
    potts_entropy,
    potts_exact,
    potts_one_sweep_entropy,
    potts_samples,
)

seeds = st.integers(0, 2**32 - 1)


def all_configs(L: int, q: int) -> np.ndarray:
    """Every configuration (q^(L^2), L, L), in the row-major order of ``potts_exact``'s table."""
    return np.stack(np.unravel_index(np.arange(q ** (L * L)), (q,) * (L * L)), axis=-1).reshape(-1, L, L)


@pytest.mark.parametrize("L, periodic", [(2, False), (3, False), (4, False), (3, True), (4, True)])
def test_edges_join_lattice_neighbours_once(L, periodic):
    edges = lattice_edges(L, periodic)
    assert len(edges) == (2 * L * L if periodic else 2 * L * (L - 1))
    assert len({tuple(sorted(e)) for e in edges.tolist()}) == len(edges)
    (r1, c1), (r2, c2) = np.divmod(edges[:, 0], L), np.divmod(edges[:, 1], L)
    dr, dc = np.abs(r1 - r2), np.abs(c1 - c2)
    wrapped = (L - 1) if periodic else 1
    assert np.all(((dr == 0) & np.isin(dc, [1, wrapped])) | ((dc == 0) & np.isin(dr, [1, wrapped])))


@pytest.mark.parametrize("L, periodic", [(3, False), (4, False), (3, True), (5, True)])
def test_colour_classes_partition_the_sites_into_independent_sets(L, periodic):
    neighbours = _neighbours(L, periodic)
    classes = _colour_classes(neighbours)
    assert sorted(np.concatenate(classes).tolist()) == list(range(L * L))
    assert all(not np.isin(neighbours[group], group).any() for group in classes)
    if periodic and L % 2:
        assert 3 <= len(classes) <= 5
    else:
        assert len(classes) == 2


def test_potts_energy_by_hand():
    same = np.zeros((3, 3), dtype=int)
    assert potts_energy(same, 0.5) == -0.5 * 12 and potts_energy(same, 0.5, periodic=True) == -0.5 * 18
    checker = np.indices((3, 3)).sum(axis=0) % 2
    assert potts_energy(checker, 0.5) == 0
    stripes = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    assert potts_energy(np.stack([stripes, same]), 2.0).tolist() == [-12.0, -24.0]


@given(st.integers(2, 3), st.floats(-1.0, 1.5), st.booleans())
def test_potts_exact_is_proportional_to_exp_minus_energy(q, J, periodic):
    L = 3 if periodic else 2
    table = potts_exact(L, q, J, periodic=periodic)
    assert table.shape == (q,) * (L * L) and math.isclose(table.sum(), 1.0, rel_tol=1e-12)
    weight = np.exp(-potts_energy(all_configs(L, q), J, periodic=periodic))
    np.testing.assert_allclose(table.ravel(), weight / weight.sum(), rtol=1e-10)


@pytest.mark.parametrize("q, J, periodic", [(3, 0.5, False), (2, 1.0, False), (3, 0.1, True), (4, 0.5, False)])
def test_metropolis_hastings_mean_energy_matches_enumeration(q, J, periodic):
    """3 x 3 lattice, 4000 chains of 100 sweeps: the mean energy is within 4 standard errors of exact."""
    n = 4000
    p = potts_exact(3, q, J, periodic=periodic).ravel()
    energy = potts_energy(all_configs(3, q), J, periodic=periodic)
    mean, std = p @ energy, math.sqrt(p @ energy**2 - (p @ energy) ** 2)
    samples = potts_samples(n, 3, q, J, seed=1, steps=100, periodic=periodic)
    assert samples.shape == (n, 3, 3) and samples.dtype == np.int64 and samples.min() >= 0 and samples.max() < q
    assert abs(potts_energy(samples, J, periodic=periodic).mean() - mean) < 4 * std / math.sqrt(n)


def test_metropolis_hastings_frequencies_match_enumeration_on_2x2():
    n, J = 8000, 0.8
    p = potts_exact(2, 2, J).ravel()
    samples = potts_samples(n, 2, 2, J, seed=3, steps=50).reshape(n, -1)
    counts = np.bincount(samples @ (2 ** np.arange(3, -1, -1)), minlength=16)
    chi2 = ((counts - n * p) ** 2 / (n * p)).sum()
    assert chi2 < 15 + 6 * math.sqrt(30), f"chi-square {chi2:.1f} on 15 degrees of freedom"


def test_samples_are_seeded_and_zero_steps_is_uniform_noise():
    assert np.array_equal(potts_samples(20, 4, 3, 0.5, seed=2, steps=5), potts_samples(20, 4, 3, 0.5, seed=2, steps=5))
    noise = potts_samples(3000, 3, 3, 1.5, seed=0, steps=0)
    assert abs(np.bincount(noise.ravel(), minlength=3) / noise.size - 1 / 3).max() < 0.02
    assert potts_samples(0, 3, 3, 0.5, seed=0).shape == (0, 3, 3)


def test_a_fixed_start_is_seeded_and_zero_sweeps_return_it():
    samples = potts_samples(30, 4, 3, 0.5, seed=2, steps=3, start="fixed")
    assert samples.shape == (30, 4, 4) and samples.dtype == np.int64 and samples.min() >= 0 and samples.max() < 3
    assert np.array_equal(samples, potts_samples(30, 4, 3, 0.5, seed=2, steps=3, start="fixed"))
    assert not np.array_equal(samples, potts_samples(30, 4, 3, 0.5, seed=3, steps=3, start="fixed"))
    assert not np.array_equal(samples, potts_samples(30, 4, 3, 0.5, seed=2, steps=3))
    assert np.array_equal(potts_samples(5, 3, 4, 0.5, seed=0, steps=0, start="fixed"), np.zeros((5, 3, 3), int))
    assert np.array_equal(ising_samples(5, 3, 0.5, seed=0, steps=0, start="fixed"), np.zeros((5, 3, 3), int))


def test_a_few_sweeps_from_the_fixed_start_are_not_at_equilibrium_and_many_are():
    """3 x 3, q = 3, J = 0.5, 4000 chains: after 1 sweep from all-0 the mean energy lies more than
    10 standard errors below the exact mean (the chains remember their ordered start); after 100
    sweeps within 4."""
    n, q, J = 4000, 3, 0.5
    p = potts_exact(3, q, J).ravel()
    energy = potts_energy(all_configs(3, q), J)
    mean, std = p @ energy, math.sqrt(p @ energy**2 - (p @ energy) ** 2)
    few = potts_energy(potts_samples(n, 3, q, J, seed=1, steps=1, start="fixed"), J)
    many = potts_energy(potts_samples(n, 3, q, J, seed=1, steps=100, start="fixed"), J)
    assert few.mean() < mean - 10 * std / math.sqrt(n)
    assert abs(many.mean() - mean) < 4 * std / math.sqrt(n)


def one_sweep_table(L: int, q: int, J: float) -> np.ndarray:
    """The distribution (q^(L^2),) after one sweep from all-0, by applying each site's
    Metropolis-Hastings kernel to the whole table in the sampler's site order (the oracle)."""
    sites = L * L
    states = all_configs(L, q).reshape(-1, sites)
    place = q ** np.arange(sites - 1, -1, -1)
    edges = lattice_edges(L)
    p = np.zeros(q**sites)
    p[0] = 1.0
    for group in _colour_classes(_neighbours(L, False)):
        for i in group:
            around = [b if a == i else a for a, b in edges if i in (a, b)]
            agree = [sum((states[:, j] == a) for j in around) for a in range(q)]  # (q, q^(L^2))
            agree_now = np.choose(states[:, i], agree)
            new = np.zeros_like(p)
            for a in range(q):
                accept = np.minimum(1.0, np.exp(J * (agree[a] - agree_now)))
                np.add.at(new, np.arange(q**sites) + (a - states[:, i]) * place[i], p * accept / q)
                new += p * (1 - accept) / q
            p = new
    return p


@pytest.mark.parametrize("L, q, J", [(2, 2, 0.7), (2, 3, -0.4), (3, 2, 1.5), (3, 3, 0.5)])
def test_one_sweep_entropy_matches_the_kernel_applied_to_the_table(L, q, J):
    assert math.isclose(potts_one_sweep_entropy(L, q, J), table_entropy(one_sweep_table(L, q, J)), rel_tol=1e-10)
    if q == 2:
        assert math.isclose(ising_one_sweep_entropy(L, J / 2), potts_one_sweep_entropy(L, 2, J), rel_tol=1e-12)


def test_one_sweep_samples_match_the_kernel_on_2x2():
    n, J = 8000, 0.6
    p = one_sweep_table(2, 2, J)
    samples = potts_samples(n, 2, 2, J, seed=4, steps=1, start="fixed").reshape(n, -1)
    counts = np.bincount(samples @ (2 ** np.arange(3, -1, -1)), minlength=16)
    seen = p > 0
    assert counts[~seen].sum() == 0
    chi2 = ((counts[seen] - n * p[seen]) ** 2 / (n * p[seen])).sum()
    dof = seen.sum() - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), f"chi-square {chi2:.1f} on {dof} degrees of freedom"


def test_ising_energy_is_minus_j_sum_of_spin_products():
    config = np.array([[1, 0], [1, 1]])
    spins = 2 * config - 1
    (a, b), (c, d) = spins
    by_hand = -0.7 * (a * b + c * d + a * c + b * d)
    assert math.isclose(float(ising_energy(config, 0.7)), by_hand)
    with pytest.raises(ValueError, match="must hold 0 and 1"):
        ising_energy(np.full((2, 2), 2), 0.7)


def test_ising_is_potts_with_q_2_and_twice_the_coupling():
    table = ising_exact(3, 0.4)
    weight = np.exp(-ising_energy(all_configs(3, 2), 0.4))
    np.testing.assert_allclose(table.ravel(), weight / weight.sum(), rtol=1e-10)
    assert np.array_equal(ising_samples(10, 3, 0.4, seed=5, steps=3), potts_samples(10, 3, 2, 0.8, seed=5, steps=3))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: potts_samples(-1, 3, 3, 0.5, 0), ValueError, "n must be an integer >= 0"),
        (lambda: potts_samples(5, 1, 3, 0.5, 0), ValueError, "L must be an integer >= 2"),
        (lambda: potts_samples(5, 2, 3, 0.5, 0, periodic=True), ValueError, "L must be an integer >= 3"),
        (lambda: potts_samples(5, 3, 1, 0.5, 0), ValueError, "q must be an integer >= 2"),
        (lambda: potts_samples(5, 3, 3, float("inf"), 0), ValueError, "J must be a finite number"),
        (lambda: potts_samples(5, 3, 3, 0.5, 0, steps=-1), ValueError, "steps must be an integer >= 0"),
        (lambda: potts_samples(5, 3, 3, 0.5, 0, start="zeros"), ValueError, "start must be one of 'uniform', 'fixed'"),
        (lambda: potts_one_sweep_entropy(3, 17, 0.5), ValueError, "neighbour states exceed"),
        (lambda: potts_exact(5, 3, 0.5), ValueError, "exceed the enumeration limit"),
        (lambda: potts_exact(3, 1, 0.5), ValueError, "q must be an integer >= 2"),
        (lambda: potts_energy(np.zeros((2, 3), dtype=int), 0.5), ValueError, r"shape \(\.\.\., L, L\)"),
        (lambda: potts_energy(np.zeros((3, 3)), 0.5), TypeError, "integer states"),
        (lambda: ising_samples(5, 1, 0.5, 0), ValueError, "L must be an integer >= 2"),
        (lambda: ising_exact(3, float("nan")), ValueError, "J must be a finite number"),
    ],
)
def test_bad_arguments_raise(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_more_than_127_states_is_refused():
    with pytest.raises(ValueError, match="q must be <= 127"):
        potts_samples(2, 3, 128, 0.5, 0)
    assert potts_samples(2, 3, 127, 0.5, 0, steps=2).max() < 127


@given(st.sampled_from([(2, 2), (2, 3), (3, 2), (3, 3), (4, 2)]), st.floats(-1.0, 2.0))
def test_transfer_matrix_entropy_matches_enumeration(L_q, J):
    L, q = L_q
    assert math.isclose(potts_entropy(L, q, J), table_entropy(potts_exact(L, q, J)), rel_tol=1e-10, abs_tol=1e-10)
    if q == 2:
        assert math.isclose(ising_entropy(L, J / 2), potts_entropy(L, 2, J), rel_tol=1e-12)


def test_transfer_matrix_entropy_limits():
    assert math.isclose(potts_entropy(4, 3, 0.0), 16 * math.log(3), rel_tol=1e-12)
    assert abs(potts_entropy(4, 3, 30.0) - math.log(3)) < 1e-6  # three ground states, all sites alike
    with pytest.raises(ValueError, match="transfer-matrix limit"):
        potts_entropy(5, 6, 0.5)
