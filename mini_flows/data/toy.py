"""Toy data of Discrete Flows (Tran et al., 2019): the discretized mixture of Gaussians (section 3.2,
Figure 2), full-rank Dirichlet distributions (section 4.1, Table 1) and addition (section 4.2).
The Potts and Ising lattices (section 4.3, Table 2) are in ``mini_flows.data.lattice``.

Every generator takes an explicit seed for ``numpy.random.default_rng`` and returns int64 arrays.
Where the true distribution is known, a probability table lets the true entropy bound any model.

References: Tran, Vafa, Agrawal, Dinh, Poole, "Discrete Flows: Invertible Generative Models of
Discrete Data", NeurIPS 2019.
"""

from __future__ import annotations

import math

import numpy as np

from mini_flows.checks import check_positive_int

MOG_MODES = 8
MOG_RADIUS = 2.0
MOG_STD = 0.1
MOG_BOUND = 2.25
MOG_WIDTH = 0.05
MOG_STATES = 90
"""The mixture of Figure 2: 8 means evenly spaced on a circle of radius 2, variance 0.01 (std 0.1),
points truncated to [-2.25, 2.25]^2 and cut into cells of width 0.05: 90 states per coordinate."""

MAX_TABLE_SIZE = 2**26
"""The largest K^D a probability table may have (512 MiB of float64)."""


def _mog_means() -> np.ndarray:
    """(8, 2) means 2 (cos(2 pi k / 8), sin(2 pi k / 8))."""
    angle = 2 * math.pi * np.arange(MOG_MODES) / MOG_MODES
    return MOG_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _normal_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a <= Z < b) for a standard normal Z, elementwise, without cancellation in either tail:
    (erfc(a / sqrt 2) - erfc(b / sqrt 2)) / 2 where a >= 0, else (erfc(-b / sqrt 2) - erfc(-a / sqrt 2)) / 2."""
    erfc = np.vectorize(math.erfc)
    upper = 0.5 * (erfc(a / math.sqrt(2)) - erfc(b / math.sqrt(2)))
    lower = 0.5 * (erfc(-b / math.sqrt(2)) - erfc(-a / math.sqrt(2)))
    return np.where(a >= 0, upper, lower)


def mog_table() -> np.ndarray:
    """The exact distribution of ``mog_samples``: probabilities (90, 90) indexed [x1, x2].

    Cell i covers [-2.25 + 0.05 i, -2.25 + 0.05 (i + 1)). A Gaussian with covariance 0.01 I puts
    mass P(a1 <= Z1 < b1) P(a2 <= Z2 < b2) on a cell, with the cell's edges standardised by the
    mode's mean and standard deviation 0.1 (``_normal_mass``, through math.erfc so that cells far
    from every mode keep their tiny but nonzero mass and log(table) is finite). The table averages
    this over the 8 modes and renormalises by the mass inside the square, which is what truncation
    (redrawing points outside it) does.
    """
    edges = -MOG_BOUND + MOG_WIDTH * np.arange(MOG_STATES + 1)
    mass = []
    for axis in range(2):
        z = (edges[None, :] - _mog_means()[:, axis, None]) / MOG_STD
        mass.append(_normal_mass(z[:, :-1], z[:, 1:]))  # (8, 90)
    table = np.einsum("ki,kj->ij", mass[0], mass[1])
    return table / table.sum()


def mog_samples(n: int, seed: int) -> np.ndarray:
    """n points of the truncated mixture, discretized: ints (n, 2) in [0, 90).

    Each point picks a mode uniformly, adds N(0, 0.01 I) noise, is redrawn (mode and noise) while
    outside [-2.25, 2.25]^2, and maps to cell floor((x + 2.25) / 0.05).
    """
    check_positive_int("n", n, minimum=0)
    rng = np.random.default_rng(seed)
    means = _mog_means()
    kept = [np.zeros((0, 2))]
    count = 0
    while count < n:
        x = means[rng.integers(0, MOG_MODES, size=n)] + MOG_STD * rng.standard_normal((n, 2))
        inside = x[np.all(np.abs(x) <= MOG_BOUND, axis=1)]
        kept.append(inside)
        count += len(inside)
    points = np.concatenate(kept)[:n]
    return np.minimum(np.floor((points + MOG_BOUND) / MOG_WIDTH), MOG_STATES - 1).astype(np.int64)


def dirichlet_table(D: int, K: int, seed: int, alpha: float = 1.0) -> np.ndarray:
    """A random full-rank distribution over K^D outcomes (Tran 4.1): probabilities of shape (K,)*D
    drawn from a symmetric Dirichlet(alpha) over all K^D entries (a point on the (K^D - 1)-simplex)."""
    check_positive_int("D", D)
    check_positive_int("K", K, minimum=2)
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    if K**D > MAX_TABLE_SIZE:
        raise ValueError(f"K^D = {K}^{D} = {K**D} entries exceed the limit of {MAX_TABLE_SIZE}")
    return np.random.default_rng(seed).dirichlet(np.full(K**D, float(alpha))).reshape((K,) * D)


def _check_table(table: np.ndarray) -> np.ndarray:
    """``table`` as float64 with at least one axis, non-negative and summing to 1, or ValueError."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim < 1 or table.size == 0:
        raise ValueError(f"table must have at least one non-empty axis, got shape {table.shape}")
    if not np.all(np.isfinite(table)) or np.any(table < 0) or abs(table.sum() - 1) > 1e-8:
        raise ValueError("table must hold non-negative probabilities summing to 1")
    return table


def sample_table(table: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n draws from a probability table of shape (K_1, ..., K_D): ints (n, D), row i the index of a
    cell drawn with probability table[cell]."""
    table = _check_table(table)
    check_positive_int("n", n, minimum=0)
    flat = np.random.default_rng(seed).choice(table.size, size=n, p=table.ravel() / table.sum())
    return np.stack(np.unravel_index(flat, table.shape), axis=1).astype(np.int64)


def table_entropy(table: np.ndarray) -> float:
    """H(p) = -sum p log p in nats (0 log 0 = 0): the lowest NLL per example any model can reach."""
    p = _check_table(table).ravel()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def addition_samples(n: int, seed: int, D: int = 10, K: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The addition task (Tran 4.2, after Zaremba and Sutskever, 2014): two D-digit numbers and their sum.

    Each digit of the inputs a and b is uniform on [0, K) (so leading zeros occur and the numbers
    are uniform on [0, K^D)); the output is (a + b) mod K^D, i.e. the sum with its (D + 1)-th digit
    removed. Digits are written most significant first, as numbers are read, so the carries run
    right to left against a left-to-right autoregressive base.

    Returns
    -------
    a, b, total : each ints (n, D) in [0, K), with a + b = total + carry * K^D digit by digit
    """
    check_positive_int("n", n, minimum=0)
    check_positive_int("D", D)
    check_positive_int("K", K, minimum=2)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, K, size=(n, D))
    b = rng.integers(0, K, size=(n, D))
    digits, carry = [], np.zeros(n, dtype=np.int64)
    for d in reversed(range(D)):
        s = a[:, d] + b[:, d] + carry
        digits.append(s % K)
        carry = s // K
    return a.astype(np.int64), b.astype(np.int64), np.stack(digits[::-1], axis=1).astype(np.int64)
