"""Sequence lengths: the padding mask and the length encoding of supplement C.

A non-autoregressive model samples the length T first and conditions everything on it:
p(x) = p(x | T) p(T). Every time step t (0-based) of a sequence of length T gets two one-hot
vectors of size ``max_length``: the distance from the start, t, and the distance from the end,
T - 1 - t. Together they encode T itself, not just a relative position. Padded steps (t >= T) get
an all-zero "distance from the end" vector; nothing real ever depends on them.

``sequence_context`` computes all of this once per batch as a ``SequenceContext``, which every
length-conditioned block (the sequence priors, the latent model's networks, the LSTM baseline)
takes instead of rebuilding it from the lengths.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class SequenceContext(NamedTuple):
    """What a batch's lengths determine, computed once by ``sequence_context``:

    lengths : (batch,) integers; real : (batch, T) booleans, True at real steps (t < lengths[b]);
    mask : (batch, T), ``real`` as 0/1 in the float dtype; encoding : (batch, T, 2 max_length), the
    length encoding in that dtype.
    """

    lengths: Array
    real: Array
    mask: Array
    encoding: Array

    def repeat(self, S: int) -> "SequenceContext":
        """The context of S copies of the batch, sample-major: (S batch, ...), copy s at rows s batch + b."""
        xp = B.xp()
        return SequenceContext(*(xp.broadcast_to(a[None], (S, *a.shape)).reshape(S * a.shape[0], *a.shape[1:])
                                 for a in self))


def sequence_context(lengths: Array, T: int, max_length: int, dtype: Any = "float64") -> SequenceContext:
    """The ``SequenceContext`` of lengths : (batch,) integers (already checked by ``check_lengths``)
    over T steps, mask and encoding in float ``dtype``."""
    lengths = B.asarray(lengths)
    real = B.xp().arange(T)[None, :] < lengths[:, None]
    return SequenceContext(lengths, real, real.astype(dtype), length_encoding(lengths, T, max_length, dtype))
