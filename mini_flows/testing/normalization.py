"""sum_y p(y) = 1 by enumeration: a discrete model's probabilities of all K^D sequences sum to one.

    assert_normalized(model, params)       AssertionError naming the failed check, or None

``model`` is a ``DiscreteFlowModel`` (``log_prob(params, tokens)`` on integer tokens (batch, D))
or a bare discrete base (``FactorizedCategorical``, ``AutoregressiveCategorical``, or a base of
your own with ``length``, ``vocab_size`` and ``log_prob(params, x) -> (log_p, cache)`` on one-hot
x (batch, D, K)). For a model with flows it also checks that they are a bijection of the K^D
sequences, which is what keeps a normalized base normalized.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mini_flows import backend as B
from mini_flows.checks import check_number, check_positive_int
from mini_flows.discrete import DiscreteFlowModel
from mini_flows.nn.tree import Tree, flatten
from mini_flows.testing.compare import assert_close
from mini_flows.testing.maps import assert_one_hot

MAX_SEQUENCES = 2**16
"""The most sequences ``assert_normalized`` enumerates unless told otherwise (K^D = 4^8, 2^16)."""
CHUNK = 4096
"""Sequences per call of the model, which bounds the memory the enumeration takes."""


def all_tokens(length: int, vocab_size: int) -> np.ndarray:
    """Every sequence, (vocab_size^length, length) host int64 tokens in lexicographic order."""
    return np.indices((vocab_size,) * length).reshape(length, -1).T.astype(np.int64)


def _sequences(model: Any, max_sequences: int) -> np.ndarray:
    """all_tokens of the model's (length, vocab_size), after the checks of the arguments."""
    check_positive_int("max_sequences", max_sequences)
    if not all(hasattr(model, name) for name in ("length", "vocab_size", "log_prob")):
        raise ValueError(f"model must be a DiscreteFlowModel or a discrete base with length, vocab_size and "
                         f"log_prob, got {type(model).__name__}")
    D, K = model.length, model.vocab_size
    if D * math.log(K) > math.log(max_sequences):
        raise ValueError(f"model has vocab_size^length = {K}^{D} sequences, more than max_sequences = "
                         f"{max_sequences} that assert_normalized enumerates; check a smaller model")
    return all_tokens(D, K)


def _log_probs(model: Any, params: Tree, tokens: np.ndarray, dtype: Any) -> np.ndarray:
    """log p of host tokens (n, D): the model's own ``log_prob``, or a base's on one-hot vectors."""
    if isinstance(model, DiscreteFlowModel):
        return B.to_numpy(model.log_prob(params, B.asarray(tokens)))
    one_hot = B.asarray(np.eye(model.vocab_size, dtype=dtype)[tokens])
    return B.to_numpy(model.log_prob(params, one_hot)[0])


def _assert_flows_biject(model: DiscreteFlowModel, params: Tree, tokens: np.ndarray, dtype: Any) -> None:
    """The flows' inverse of host tokens (n, D) is one-hot and forward undoes it bit for bit."""
    y = B.asarray(np.eye(model.vocab_size, dtype=dtype)[tokens])
    x = model.chain.inverse(params, y)[0]
    assert_one_hot(B.to_numpy(x), "the flows' inverse of the sequences")
    assert_close(model.chain.forward(params, x)[0], y, rtol=0.0, atol=0.0,
                 check="flows are a bijection of the sequences: forward(inverse(y)) == y")


def assert_normalized(model: Any, params: Tree, *, tol: float = 1e-9, max_sequences: int = MAX_SEQUENCES) -> None:
    """Assert |sum_y p(y) - 1| <= tol over all vocab_size^length sequences y, every log p(y) finite,
    and, for a ``DiscreteFlowModel`` with flows, that its flows are a bijection of the sequences:
    their inverse maps every sequence to a one-hot one and forward undoes it bit for bit (so the
    inverse is one to one, onto the K^D sequences).

    The sum is taken on the host in float64, so tol = 1e-9 suits float64 parameters; float32
    ones need about 1e-5. The enumeration runs the model on CHUNK sequences at a time and refuses
    a model of more than ``max_sequences`` sequences with a ValueError stating the count.
    """
    check_number("tol", tol)
    tokens = _sequences(model, max_sequences)
    leaves = list(flatten(params).values())
    dtype = B.value(leaves[0]).dtype if leaves else np.float64
    flows = isinstance(model, DiscreteFlowModel) and len(model.flows) > 0
    log_p = []
    for start in range(0, len(tokens), CHUNK):
        chunk = tokens[start:start + CHUNK]
        if flows:
            _assert_flows_biject(model, params, chunk, dtype)
        log_p.append(_log_probs(model, params, chunk, dtype))
    log_p_all = np.concatenate(log_p).astype(np.float64)
    sequences = f"{model.vocab_size}^{model.length} = {len(tokens)} sequences"
    if not np.isfinite(log_p_all).all():
        bad = int(np.argmax(~np.isfinite(log_p_all)))
        raise AssertionError(f"finite log p: log p = {float(log_p_all[bad])!r} for tokens {tokens[bad].tolist()}")
    total = float(np.exp(log_p_all).sum())
    if not abs(total - 1) <= tol:
        log_total = math.log(total) if total > 0 else -math.inf
        raise AssertionError(f"normalization sum_y p(y) = 1: the probabilities of all {sequences} sum to {total!r} "
                             f"(log of the sum = {log_total:.3e}), beyond tol {tol:g}")
