"""Input validation shared by every public function: clear errors instead of silently wrong results.

Each check works on arrays of any backend and on autograd boxes (it looks at the plain value).
Shapes are given as tuples whose entries are ints or None (any size).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array


class NonFiniteError(ValueError):
    """An array that must be finite holds NaN or infinity; in training, the mark of divergence."""


def check_shape(name: str, x: Array, shape: Sequence[int | None]) -> None:
    """Raise ValueError unless ``x`` has ``len(shape)`` axes whose sizes match the non-None entries."""
    actual = tuple(B.value(x).shape)
    ok = len(actual) == len(shape) and all(want is None or want == got for want, got in zip(shape, actual))
    if not ok:
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {actual}")


def check_float(name: str, x: Array, *, like: Array | None = None, finite: bool = True) -> None:
    """Raise TypeError unless ``x`` is float32/float64 (and of ``like``'s dtype when given);
    raise ValueError if it holds NaN or infinity and ``finite`` is set."""
    v = B.value(x)
    if not hasattr(v, "dtype") or not B.is_floating(v):
        kind = getattr(v, "dtype", type(v).__name__)
        raise TypeError(f"{name} must be a float32 or float64 array, got {kind}")
    if like is not None and B.value(like).dtype != v.dtype:
        raise TypeError(
            f"{name} is {v.dtype} but the parameters are {B.value(like).dtype}; "
            "initialise the parameters with the same dtype or cast the input"
        )
    if finite and not bool(B.xp().all(B.xp().isfinite(v))):
        raise NonFiniteError(f"{name} contains NaN or infinity")


def check_tokens(name: str, tokens: Array, vocab_size: int) -> None:
    """Raise TypeError unless ``tokens`` is an integer array, ValueError unless 0 <= tokens < vocab_size."""
    v = B.value(tokens)
    if not hasattr(v, "dtype") or not B.is_integer(v):
        raise TypeError(f"{name} must be an integer array, got {getattr(v, 'dtype', type(v).__name__)}")
    if v.size and (int(v.min()) < 0 or int(v.max()) >= vocab_size):
        raise ValueError(f"{name} must lie in [0, {vocab_size}), got values in [{int(v.min())}, {int(v.max())}]")


def check_mask(name: str, mask: Array, shape: Sequence[int]) -> None:
    """Raise unless ``mask`` has the given shape and holds only 0 and 1 (True/False)."""
    check_shape(name, mask, shape)
    v = B.value(mask)
    if not bool(B.xp().all((v == 0) | (v == 1))):
        raise ValueError(f"{name} must hold only 0 and 1")


def check_positive_int(name: str, n: Any, minimum: int = 1) -> int:
    """``n`` as a Python int after checking it is an integer (Python or NumPy, not bool) >=
    ``minimum``; ValueError naming ``name`` otherwise. The plain int keeps configurations JSON values."""
    try:
        ok = not isinstance(n, bool) and getattr(n, "shape", ()) == () and operator.index(n) >= minimum
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return operator.index(n)


def plain_scalar(value: Any) -> Any:
    """A NumPy (or CuPy) bool, integer or float scalar, or 0-d array, as the Python bool, int or
    float it holds; anything else unchanged. Configurations hold only JSON values this way."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if getattr(value, "shape", None) == () and kind in ("b", "i", "u", "f"):
        return value.item()
    return value


def check_nonempty_batch(name: str, x: Array) -> None:
    """Raise ValueError if ``x`` holds no sequences (its first axis is 0): a mean loss over no data,
    and its gradient, are undefined."""
    if B.value(x).shape[:1] == (0,):
        raise ValueError(f"{name} is an empty batch (shape {tuple(B.value(x).shape)}); a training loss averages over "
                         "its sequences and needs at least one")


def check_number(name: str, value: Any, *, positive: bool = True) -> float:
    """``value`` as a float after checking it is a finite real number (Python or NumPy, not bool)
    that is > 0 (``positive``) or >= 0; ValueError naming ``name`` otherwise."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {value!r}")
    return value


def broadcast_shapes(s1: Sequence[int], s2: Sequence[int], what: str) -> tuple[int, ...]:
    """The NumPy broadcast of two shapes (a zero-length axis wins over 1); ValueError
    "``what`` (s1) and (s2) do not broadcast" where they clash."""
    n = max(len(s1), len(s2))
    p1, p2 = (1,) * (n - len(s1)) + tuple(s1), (1,) * (n - len(s2)) + tuple(s2)
    if any(x != y and 1 not in (x, y) for x, y in zip(p1, p2)):
        raise ValueError(f"{what} {tuple(s1)} and {tuple(s2)} do not broadcast")
    return tuple(max(x, y) if 0 not in (x, y) else 0 for x, y in zip(p1, p2))
