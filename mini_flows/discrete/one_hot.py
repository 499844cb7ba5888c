"""One-hot sequences: conversion from and to integer tokens, validation, and categorical sampling.

Discrete flows act on one-hot arrays x : (batch, D, K), where x[b, d, k] = 1 exactly when token d
of sequence b takes the value k. Exactly one-hot inputs are what makes the flows bit-exact bijections,
so every public entry point checks them.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_positive_int, check_shape, check_tokens
from mini_flows.nn.losses import one_hot
from mini_flows.nn.sampling import categorical_draw


def check_vocab_size(vocab_size: Any) -> int:
    """vocab_size K as a Python int after checking it is an integer >= 2 (a categorical variable
    needs two values); ValueError otherwise."""
    return check_positive_int("vocab_size", vocab_size, minimum=2)


def check_one_hot(name: str, x: Array, length: int, vocab_size: int, like: Array | None = None) -> None:
    """Raise unless ``x`` is a float array (batch, length, vocab_size) of exact 0.0 / 1.0 entries with
    exactly one 1.0 on every position (TypeError for a wrong dtype, ValueError otherwise)."""
    check_float(name, x, like=like)
    check_shape(name, x, (None, length, vocab_size))
    check_exactly_one_hot(name, x)


def check_exactly_one_hot(name: str, x: Array) -> None:
    """Raise ValueError unless every entry of ``x`` (..., K) is exactly 0.0 or 1.0 with one 1.0 on
    every position of the last axis."""
    xp, v = B.xp(), B.value(x)
    # Every row summing to 1 with one non-zero entry per row on average means one non-zero per
    # row (each row needs at least one), and that entry is then the row's sum, 1.
    rows = v.size // v.shape[-1] if v.ndim else 0
    if v.ndim < 1 or int(xp.count_nonzero(v)) != rows or not bool((v.sum(axis=-1) == 1).all()):
        raise ValueError(f"{name} must be one-hot: entries exactly 0.0 or 1.0 with one 1.0 per position")


def tokens_to_one_hot(tokens: Array, length: int, vocab_size: int, dtype: Any) -> Array:
    """Integer tokens (batch, length) in [0, K) -> one-hot (batch, length, K) of ``dtype``, after
    checking the dtype (TypeError), the shape and the range (ValueError)."""
    check_tokens("tokens", tokens, vocab_size)
    check_shape("tokens", tokens, (None, length))
    return one_hot(tokens, vocab_size, dtype)


def one_hot_to_tokens(x: Array) -> Array:
    """One-hot (..., K) -> integer tokens (...) (the index of the 1.0)."""
    return B.xp().argmax(B.value(x), axis=-1)


def sample_categorical(probs: Array, u: Array) -> Array:
    """Probabilities (..., K) and uniforms u (...) in [0, 1) -> one-hot (..., K) of the token
    ``nn.sampling.categorical_draw`` picks (inverse CDF)."""
    probs = B.value(probs)
    return one_hot(categorical_draw(probs, u), probs.shape[-1], probs.dtype)
