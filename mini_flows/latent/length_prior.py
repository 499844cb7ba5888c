"""The length prior p(T) of supplement C: the empirical distribution of training lengths.

A non-autoregressive model draws the length first, p(x) = p(x | T) p(T). The paper uses the
empirical likelihood of T; we add one to every count in [1, max_length] (Laplace smoothing),

    p(T) = (n_T + 1) / (N + max_length),   T = 1, ..., max_length,

so a length never seen in training still has finite log-probability. With no data it is uniform.
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.continuous.length import check_lengths
from mini_flows.nn.sampling import categorical_draw


class LengthPrior:
    """Add-one smoothed empirical p(T) over [1, max_length].

    Parameters
    ----------
    max_length : the largest length with non-zero probability.
    counts : (max_length,) counts n_T of the lengths 1..max_length (host list or array); None: all zero.

    Build it from data with ``LengthPrior.fit(lengths, max_length)``.
    """

    def __init__(self, max_length: int, counts: Any = None):
        check_positive_int("max_length", max_length)
        counts = [0] * max_length if counts is None else [int(c) for c in B.to_numpy(counts).tolist()]
        if len(counts) != max_length or min(counts) < 0:
            raise ValueError(f"counts must be {max_length} non-negative integers, got {counts!r}")
        self.max_length, self.counts = max_length, counts
        total = sum(counts) + max_length
        self.log_probs = [math.log((c + 1) / total) for c in counts]

    @classmethod
    def fit(cls, lengths: Array, max_length: int) -> "LengthPrior":
        """Count ``lengths`` : (N,) integers in [1, max_length] (N may be 0)."""
        lengths = B.asarray(lengths)
        check_lengths(lengths, lengths.shape[0], max_length, max_length)
        host = B.to_numpy(lengths).tolist()
        counts = [0] * max_length
        for T in host:
            counts[T - 1] += 1
        return cls(max_length, counts)

    def log_prob(self, lengths: Array) -> Array:
        """log p(T) : (batch,) in nats for lengths : (batch,) integers in [1, max_length]."""
        lengths = B.asarray(lengths)
        check_lengths(lengths, lengths.shape[0], self.max_length, self.max_length)
        table = B.asarray(self.log_probs, "float64")
        return table[lengths - 1]

    def sample(self, n: int, rng: Any) -> Array:
        """n lengths : (n,) integers drawn by inverse CDF from ``rng`` (a ``B.rng`` generator)."""
        check_positive_int("n", n)
        probs = B.xp().exp(B.asarray(self.log_probs, "float64"))
        return categorical_draw(probs / probs.sum(), rng.random(n)) + 1

    def lengths_for(self, n: int, rng: Any, lengths: Array | None = None) -> Array:
        """The lengths of n sequences to generate: ``lengths`` : (n,) as given, checked to lie in
        [1, max_length], or (None) n draws T ~ p(T) from ``rng``."""
        lengths = self.sample(n, rng) if lengths is None else B.asarray(lengths)
        check_lengths(lengths, n, self.max_length, self.max_length)
        return lengths
