"""Hypothesis strategies for the inputs of flows and models, on the current backend.

    seeds()                                    integers for B.host_rng
    token_arrays(length, K, batch)             integer tokens (batch, length) in [0, K)
    one_hot_arrays(length, K, batch)           one-hot (batch, length, K), the input of a discrete flow
    lengths(max_length, batch)                 sequence lengths (batch,) in [1, max_length]
    enumerable_sizes(max_length, ...)          (length, K) small enough to enumerate all K^length sequences
    normal_arrays(shape, scale)                N(0, scale^2) floats, a continuous flow's input
    contexts(lead, size)                       a conditioning array (*lead, size), None for size 0
    params(model, noise)                       model.init(rng) plus N(0, noise^2), a parameter tree

Every size argument is an int or a strategy of ints (``shape`` and ``lead``: a tuple or a
strategy of tuples); a bad size is a ValueError naming it, when drawn. Tokens are drawn bytes
(their value mod K), so Hypothesis shrinks a failing draw toward token 0; floats come from a
drawn seed (Hypothesis shrinks the seed): normal values keep a flow well conditioned, where
entries at the edges of ``st.floats`` would test overflow instead. The arrays are made with
``B.asarray`` when drawn, so they live on the backend of the test.

Example::

    @given(params=strategies.params(flow, noise=0.1), x=strategies.normal_arrays((3, flow.dim)))
    def test_my_flow(params, x):
        assert_bijection(flow, params, x)
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from hypothesis import strategies as st

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_number, check_positive_int
from mini_flows.nn.tree import Tree, tree_map

T = TypeVar("T")
Size = int | st.SearchStrategy[int]
Shape = tuple[int, ...] | st.SearchStrategy[tuple[int, ...]]
BATCH = st.integers(1, 3)
"""The default batch sizes."""
_SEEDS = st.integers(0, 2**32 - 1)


def _drawn(draw: Any, value: T | st.SearchStrategy[T]) -> T:
    """A value drawn from ``value`` where it is a strategy, else ``value`` itself."""
    return draw(value) if isinstance(value, st.SearchStrategy) else value


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``B.host_rng``: integers in [0, 2^32)."""
    return _SEEDS


@st.composite
def _host_tokens(draw: Any, length: Size, vocab_size: Size, batch: Size) -> np.ndarray:
    n, D, K = _drawn(draw, batch), _drawn(draw, length), _drawn(draw, vocab_size)
    for name, value in (("batch", n), ("length", D), ("vocab_size", K)):
        check_positive_int(name, value)
    width = max(1, -(-(K - 1).bit_length() // 8))  # bytes per token
    raw = np.frombuffer(draw(st.binary(min_size=n * D * width, max_size=n * D * width)), np.uint8)
    values = (raw.reshape(n * D, width).astype(np.int64) << (8 * np.arange(width))).sum(-1)
    return (values % K).reshape(n, D)


def token_arrays(length: Size, vocab_size: Size, batch: Size = BATCH) -> st.SearchStrategy[Array]:
    """Integer tokens (batch, length) in [0, vocab_size), int64 on the current backend."""
    return _host_tokens(length, vocab_size, batch).map(B.asarray)


@st.composite
def one_hot_arrays(draw: Any, length: Size, vocab_size: Size, batch: Size = BATCH,
                   dtype: Any = "float64") -> Array:
    """One-hot vectors (batch, length, vocab_size) of float ``dtype`` on the current backend."""
    K = _drawn(draw, vocab_size)
    return B.asarray(np.eye(K, dtype=B.float_dtype(dtype))[draw(_host_tokens(length, K, batch))])


@st.composite
def lengths(draw: Any, max_length: Size, batch: Size = BATCH) -> Array:
    """Sequence lengths (batch,) in [1, max_length], int64 on the current backend (the context of
    a sequence prior)."""
    longest, n = _drawn(draw, max_length), _drawn(draw, batch)
    check_positive_int("max_length", longest)
    check_positive_int("batch", n)
    return B.asarray(np.array(draw(st.lists(st.integers(1, longest), min_size=n, max_size=n)), np.int64))


def enumerable_sizes(max_length: int = 6, max_sequences: int = 4096,
                     max_vocab: int = 64) -> st.SearchStrategy[tuple[int, int]]:
    """(length, K) with length in [1, max_length], K in [2, max_vocab] and K^length <= max_sequences,
    for ``assert_normalized``; ValueError where 2^max_length > max_sequences."""
    if 2**max_length > max_sequences:
        raise ValueError(f"max_sequences = {max_sequences} is below 2^max_length = 2^{max_length}")

    def sizes(length: int) -> st.SearchStrategy[tuple[int, int]]:
        top = max(k for k in range(2, max_vocab + 1) if k**length <= max_sequences)
        return st.tuples(st.just(length), st.integers(2, top))

    return st.integers(1, max_length).flatmap(sizes)


@st.composite
def normal_arrays(draw: Any, shape: Shape, scale: float = 1.0, dtype: Any = "float64") -> Array:
    """scale * N(0, 1) values of ``shape`` and float ``dtype`` on the current backend, drawn from a seed."""
    check_number("scale", scale, positive=False)
    values = B.host_rng(draw(seeds())).standard_normal(_drawn(draw, shape)) * scale
    return B.asarray(values, B.float_dtype(dtype))


@st.composite
def contexts(draw: Any, lead: Shape, size: Size, scale: float = 1.0, dtype: Any = "float64") -> Array | None:
    """A conditioning array (*lead, size) of scale * N(0, 1) values (``normal_arrays``), or None
    where the drawn size is 0 (a flow without a context)."""
    n = _drawn(draw, size)
    check_positive_int("size", n, minimum=0)
    return draw(normal_arrays((*_drawn(draw, lead), n), scale, dtype)) if n else None


def params(model: Any, noise: float = 0.1, dtype: Any = "float64") -> st.SearchStrategy[Tree]:
    """Parameter trees ``model.init(rng, dtype)`` plus N(0, noise^2) on every leaf, rng from a drawn
    seed; ``model`` is anything with ``init(rng, dtype)`` (a bijection, a base, a model).

    The noise moves the draws away from an init's special values (flows that start near the
    identity, zero biases) and, for ReLU networks, keeps units off their kink, where autograd
    splits ties and a hand-written backward pass need not agree.
    """
    check_number("noise", noise, positive=False)
    B.float_dtype(dtype)

    def draw(seed: int) -> Tree:
        rng = B.host_rng(seed)
        tree = model.init(rng, dtype)
        return tree_map(lambda a: a + B.asarray(noise * rng.standard_normal(a.shape), B.value(a).dtype), tree)

    return seeds().map(draw)
