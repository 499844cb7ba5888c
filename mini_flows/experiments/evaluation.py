"""Scoring a model: log-probabilities of many rows in bounded chunks, the mean NLL, and every
sequence of a small space (for exact sums over it)."""

from __future__ import annotations

from typing import Callable

from mini_flows import backend as B
from mini_flows.backend import Array


def log_probs(log_prob: Callable[[Array], Array], tokens: Array, chunk: int = 4096) -> Array:
    """log_prob(tokens) : (n,) for the rows of ``tokens``, ``chunk`` rows per call (bounding the
    memory of one call)."""
    return B.xp().concatenate([log_prob(tokens[start:start + chunk]) for start in range(0, tokens.shape[0], chunk)])


def mean_nll(log_prob: Callable[[Array], Array], tokens: Array, chunk: int = 4096) -> float:
    """-mean log_prob(tokens) over the rows of ``tokens``, ``chunk`` rows at a time."""
    return -float(B.xp().mean(log_probs(log_prob, tokens, chunk)))



def all_sequences(length: int, vocab_size: int) -> Array:
    """Every sequence of ``length`` tokens in [0, vocab_size), row-major: ints (K^D, D)."""
    xp = B.xp()
    index = xp.arange(vocab_size**length)
    return xp.stack([(index // vocab_size ** (length - 1 - d)) % vocab_size for d in range(length)], axis=1)
