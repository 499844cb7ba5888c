"""Seeded parameter initialisation.

Parameters are drawn on the host from a ``numpy.random.Generator`` (``backend.host_rng``) and
moved to the current backend, so one seed gives the same parameters on NumPy and CuPy. Every
random parameter of every block and model is drawn here, so this is where ``init(rng, dtype)``
checks its ``rng``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array


def check_rng(rng: Any) -> None:
    """TypeError unless ``rng`` is a random generator with ``standard_normal`` and ``uniform`` (a
    ``numpy.random.Generator`` such as ``B.host_rng(seed)``); a seed or None is not one."""
    if not all(callable(getattr(rng, method, None)) for method in ("standard_normal", "uniform")):
        raise TypeError(f"rng must be a random generator such as B.host_rng(seed) (numpy.random.Generator), "
                        f"got {rng!r}")


def normal(rng: Any, shape: Sequence[int], std: float, dtype: Any = "float64") -> Array:
    """Gaussian entries of ``shape`` with standard deviation ``std``."""
    check_rng(rng)
    return B.asarray(rng.standard_normal(tuple(shape)) * std, dtype)


def uniform(rng: Any, limit: float, shape: Sequence[int], dtype: Any = "float64") -> Array:
    """Entries of ``shape`` uniform in [-limit, limit)."""
    check_rng(rng)
    return B.asarray(rng.uniform(-limit, limit, size=tuple(shape)), dtype)


def glorot(rng: Any, n_in: int, n_out: int, dtype: Any = "float64") -> Array:
    """Glorot/Xavier uniform weights of shape (n_in, n_out)."""
    return uniform(rng, math.sqrt(6.0 / (n_in + n_out)), (n_in, n_out), dtype)


def zeros(shape: Sequence[int], dtype: Any = "float64") -> Array:
    """An all-zero array on the current backend."""
    return B.xp().zeros(tuple(shape), dtype=dtype)
