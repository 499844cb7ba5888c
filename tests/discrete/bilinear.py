"""The bilinear definition of modular arithmetic on one-hot vectors: the oracle for the O(K) ops.

Each operation of ``mini_flows.discrete.modular`` is, as a map of vectors, bilinear:

    out[..., m] = sum_j b[..., j] a[..., T[m, j]]

for an integer index table T (K x K for addition and subtraction, K x |units| for the scale). It
is written here with plain array operations on ``B.xp()``, so autograd differentiates it; its
derivatives at one-hot points are what the hand-written O(K) VJPs must equal. O(K^2) per
position in time and memory: for tests and the benchmark's before/after rows only.
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.discrete.modular import mod_inverse, units


def _bilinear(a: Any, b: Any, table: Any) -> Any:
    """out[..., m] = sum_j b[..., j] a[..., table[m, j]]."""
    return B.xp().einsum("...mj,...j->...m", a[..., table], b)


def _shift_table(K: int, sign: int) -> Any:
    """T[m, j] = (m + sign j) mod K."""
    m = B.to_numpy(B.xp().arange(K))
    return (m[:, None] + sign * m[None, :]) % K


def add(x: Any, shift: Any) -> Any:
    """y[m] = sum_j shift[j] x[(m - j) mod K]."""
    return _bilinear(x, shift, _shift_table(x.shape[-1], -1))


def minus(y: Any, shift: Any) -> Any:
    """x[m] = sum_j shift[j] y[(m + j) mod K]."""
    return _bilinear(y, shift, _shift_table(y.shape[-1], 1))


def multiply(x: Any, scale: Any) -> Any:
    """y[m] = sum_{j unit} scale[j] x[(m j^-1) mod K]."""
    K = x.shape[-1]
    u = B.to_numpy(B.asarray(units(K), "int64"))
    m = B.to_numpy(B.xp().arange(K))
    table = (m[:, None] * B.to_numpy(mod_inverse(B.asarray(u), K))[None, :]) % K
    return _bilinear(x, scale[..., u], table)


def inverse_scale(scale: Any) -> Any:
    """s'[j] = s[j^-1 mod K] at units j, 0 elsewhere."""
    K = scale.shape[-1]
    perm = [mod_inverse(j, K) if math.gcd(j, K) == 1 else j for j in range(K)]
    unit = B.asarray([float(math.gcd(j, K) == 1) for j in range(K)], B.value(scale).dtype)
    return scale[..., perm] * unit


def location_scale(x: Any, mu: Any, sigma: Any) -> Any:
    """Eq. 5 composed of the bilinear maps: (mu + sigma x) mod K."""
    return add(x if sigma is None else multiply(x, sigma), mu)


def inverse_location_scale(y: Any, mu: Any, sigma: Any) -> Any:
    """The inverse of eq. 5 composed of the bilinear maps: sigma^-1 (y - mu) mod K."""
    r = minus(y, mu)
    return r if sigma is None else multiply(r, inverse_scale(sigma))
