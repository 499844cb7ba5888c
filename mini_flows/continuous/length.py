"""Sequence lengths: the padding mask and the length encoding of supplement C.

A non-autoregressive model samples the length T first and conditions everything on it:
p(x) = p(x | T) p(T). Every time step t (0-based) of a sequence of length T gets two one-hot
vectors of size ``max_length``: the distance from the start, t, and the distance from the end,
T - 1 - t. Together they encode T itself, not just a relative position. Padded steps (t >= T) get
an all-zero "distance from the end" vector; nothing real ever depends on them.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int, check_shape


def check_lengths(lengths: Array, batch: int, T: int, max_length: int) -> None:
    """Raise unless ``lengths`` is an integer array of shape (batch,) with 1 <= lengths <= min(T, max_length)."""
    v = B.value(lengths)
    if not hasattr(v, "dtype") or not B.is_integer(v):
        raise TypeError(f"lengths must be an integer array, got {getattr(v, 'dtype', type(v).__name__)}")
    check_shape("lengths", v, (batch,))
    top = min(T, max_length)
    if v.size and (int(v.min()) < 1 or int(v.max()) > top):
        raise ValueError(
            f"lengths must lie in [1, {top}] (the sequence axis has {T} steps, max_length is {max_length}), "
            f"got values in [{int(v.min())}, {int(v.max())}]"
        )


def length_mask(lengths: Array, T: int, dtype: Any = "float64") -> Array:
    """mask[b, t] = 1 where t < lengths[b] (a real step), else 0.

    lengths : (batch,) integers. Returns mask : (batch, T) of ``dtype``.
    """
    xp = B.xp()
    return (xp.arange(T)[None, :] < lengths[:, None]).astype(dtype)


def length_encoding(lengths: Array, T: int, max_length: int, dtype: Any = "float64") -> Array:
    """The two one-hot vectors of supplement C at every step, concatenated.

    enc[b, t, k] = [t == k] and enc[b, t, max_length + k] = [lengths[b] - 1 - t == k], k < max_length.

    lengths : (batch,) integers. Returns enc : (batch, T, 2 * max_length) of ``dtype``.
    """
    check_positive_int("max_length", max_length)
    xp = B.xp()
    t = xp.arange(T)
    k = xp.arange(max_length)
    from_start = xp.broadcast_to((t[:, None] == k[None, :])[None], (lengths.shape[0], T, max_length))
    from_end = (lengths[:, None, None] - 1 - t[None, :, None]) == k[None, None, :]
    return xp.concatenate([from_start, from_end], axis=-1).astype(dtype)
