"""Seeded parameter initialisation.

Parameters are drawn on the host from a ``numpy.random.Generator`` (``backend.host_rng``) and
moved to the current backend, so one seed gives the same parameters on NumPy and CuPy.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array


def normal(rng: Any, shape: Sequence[int], std: float, dtype: Any = "float64") -> Array:
    """Gaussian entries with standard deviation ``std``."""
    return B.asarray(rng.standard_normal(tuple(shape)) * std, dtype)


def glorot(rng: Any, n_in: int, n_out: int, dtype: Any = "float64") -> Array:
    """Glorot/Xavier uniform weights of shape (n_in, n_out)."""
    limit = math.sqrt(6.0 / (n_in + n_out))
    return B.asarray(rng.uniform(-limit, limit, size=(n_in, n_out)), dtype)


def zeros(shape: Sequence[int], dtype: Any = "float64") -> Array:
    """An all-zero array on the current backend."""
    return B.xp().zeros(tuple(shape), dtype=dtype)
