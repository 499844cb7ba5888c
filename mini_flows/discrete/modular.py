"""Arithmetic modulo K on one-hot vectors: the location-scale map of discrete flows.

Tran et al. (2019), section 3.2, equation 5: y = (mu + sigma * x) mod K, invertible where sigma is
a unit (coprime with K), with inverse x = sigma^-1 (y - mu) mod K. XOR is the case K = 2, sigma = 1.

Values in {0, ..., K-1} are one-hot vectors of shape (..., K). Each operation is a bilinear map

    out[..., m] = sum_j b[..., j] a[..., T[m, j]]

for an integer index table T built at call time, done as one einsum against the gathered array
a[..., T] of shape (..., K, J), so memory and time grow as K^2 per position. On one-hot inputs
every output entry is a sum of products of 0 and 1 with exactly one 1, so the result is exactly
one-hot in float32 and float64 alike (no FFT, whose round-off flips near-tied argmaxes in stacked
flows). On soft inputs (the straight-through
estimator, section 3.3) the same bilinear map carries gradients to both arguments.

Leading axes of the two arguments broadcast against each other; the last axes must both be K.

References: Tran, Vafa, Agrawal, Dinh, Poole. Discrete Flows: Invertible Generative Models of
Discrete Data. NeurIPS 2019.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_positive_int, check_shape
from mini_flows.nn.broadcast import unbroadcast


def units(K: int) -> tuple[int, ...]:
    """The residues j in [1, K) with gcd(j, K) = 1: the invertible scales modulo K."""
    check_positive_int("K", K, minimum=2)
    return tuple(j for j in range(1, K) if math.gcd(j, K) == 1)


def mod_inverse(a: Any, K: int) -> Any:
    """a^-1 mod K: the b in [0, K) with a b = 1 (mod K), by the extended Euclidean algorithm.

    Inputs: a : an int, or an integer array of any shape and backend (vectorised; negative
    entries are reduced mod K first); K : int >= 2.
    Returns an int for an int, an int64 array of a's shape for an array.
    Raises ValueError naming a and K where gcd(a, K) != 1, and for K < 2; TypeError for a
    non-integer a.

    The iteration keeps r_{i-1} = s_{i-1} a (mod K) with r_0 = a, r_1 = K; it stops (entry by
    entry) at r_i = 0, where r_{i-1} = gcd(a, K) and s_{i-1} is the inverse when that gcd is 1.
    A fixed number of steps, 2 bit_length(K) + 2, bounds Euclid's (Lame's theorem), so arrays
    need no data-dependent loop.
    """
    check_positive_int("K", K, minimum=2)
    scalar = isinstance(a, Integral) and not isinstance(a, bool)
    if not scalar:
        v = B.value(a)
        if not hasattr(v, "dtype") or not B.is_integer(v):
            raise TypeError(f"a must be an int or an integer array, got {getattr(v, 'dtype', type(a).__name__)}")
        a = v.astype("int64")
    old_r, r = a % K, a * 0 + K
    old_s, s = a * 0 + 1, a * 0
    for _ in range(2 * K.bit_length() + 2):
        live = r != 0
        q = old_r // (r + (r == 0))
        old_r, r = old_r + live * (r - old_r), live * (old_r - q * r)
        old_s, s = old_s + live * (s - old_s), s + live * (old_s - q * s - s)
    if scalar:
        if old_r != 1:
            raise ValueError(f"a = {a} has no inverse modulo K = {K}: gcd(a, K) = {int(old_r)} != 1")
        return int(old_s % K)
    bad = old_r != 1
    if bool(bad.any()):
        values = sorted(set(B.to_numpy(a[bad]).tolist()))
        raise ValueError(f"a has entries with no inverse modulo K = {K} (gcd(a, K) != 1): a = {values[:10]}")
    return old_s % K


def _check_operands(names: tuple[str, str], a: Array, b: Array) -> int:
    """Validate two (..., K) float arrays of one dtype with broadcastable leading axes; return K."""
    for name, v in zip(names, (a, b)):
        check_float(name, v)
    va, vb = B.value(a), B.value(b)
    if va.dtype != vb.dtype:
        raise TypeError(f"{names[0]} is {va.dtype} but {names[1]} is {vb.dtype}; cast one to the other's dtype")
    if va.ndim < 1 or vb.ndim < 1 or va.shape[-1] != vb.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have shapes (..., K) with the same K, got {va.shape} and {vb.shape}"
        )
    K = va.shape[-1]
    if K < 2:
        raise ValueError(f"{names[0]} has K = {K} categories on its last axis; need K >= 2")
    _broadcast_shape(names, va.shape[:-1], vb.shape[:-1])
    return K


def _broadcast_shape(names: tuple[str, str], s1: tuple[int, ...], s2: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast of two leading shapes (NumPy rules); ValueError naming both where they clash."""
    n = max(len(s1), len(s2))
    p1, p2 = (1,) * (n - len(s1)) + tuple(s1), (1,) * (n - len(s2)) + tuple(s2)
    if any(d1 != d2 and 1 not in (d1, d2) for d1, d2 in zip(p1, p2)):
        raise ValueError(f"the leading axes of {names[0]} {tuple(s1)} and {names[1]} {tuple(s2)} do not broadcast")
    return tuple(max(d1, d2) for d1, d2 in zip(p1, p2))


def _check_scale_alone(scale: Array) -> int:
    """Validate a (..., K) float array with K >= 2; return K."""
    check_float("scale", scale)
    shape = tuple(B.value(scale).shape)
    if len(shape) < 1 or shape[-1] < 2:
        raise ValueError(f"scale must have shape (..., K) with K >= 2, got {shape}")
    return shape[-1]


def _check_scale(scale: Array, K: int) -> None:
    """ValueError unless scale is zero at every non-unit (0 included)."""
    non_units = [j for j in range(K) if math.gcd(j, K) != 1]
    if bool(B.xp().any(B.value(scale)[..., B.asarray(non_units, "int64")] != 0)):
        raise ValueError(
            f"scale puts mass on values not coprime with K = {K} (non-units {non_units[:10]}), which are not "
            "invertible; mask its logits with mask_scale_logits"
        )


def _shift_table(K: int, sign: int) -> Array:
    """T[m, j] = (m + sign j) mod K, shape (K, K)."""
    m = B.xp().arange(K)
    return (m[:, None] + sign * m[None, :]) % K


def _scale_tables(K: int) -> tuple[Array, Array, Array]:
    """u : (J,) the units; T[m, i] = m u_i^-1 mod K and its inverse T'[n, i] = n u_i mod K, (K, J)."""
    u = B.asarray(units(K), "int64")
    m = B.xp().arange(K)
    return u, (m[:, None] * mod_inverse(u, K)[None, :]) % K, (m[:, None] * u[None, :]) % K


def _inverse_scale_table(K: int, dtype: Any) -> tuple[Array, Array]:
    """P[j] = j^-1 mod K at units (an involution), j elsewhere; and the 0/1 indicator of units."""
    unit = [math.gcd(j, K) == 1 for j in range(K)]
    perm = [mod_inverse(j, K) if is_unit else j for j, is_unit in enumerate(unit)]
    return B.asarray(perm, "int64"), B.asarray(unit, dtype)


def _bilinear(a: Array, b: Array, table: Array) -> Array:
    """out[..., m] = sum_j b[..., j] a[..., table[m, j]]."""
    return B.xp().einsum("...mj,...j->...m", a[..., table], b)



def _bilinear_vjp(a: Array, b: Array, table: Array, inverse: Array, dout: Array) -> tuple[Array, Array]:
    """Gradients of sum(dout * _bilinear(a, b, table)) for a table whose every column is a
    permutation, with inverse[n, j] = the m where table[m, j] = n:
    da[n] = sum_j b[j] dout[inverse[n, j]],  db[j] = sum_m dout[m] a[table[m, j]]."""
    da = _bilinear(dout, b, inverse)
    db = B.xp().einsum("...m,...mj->...j", dout, a[..., table])
    return unbroadcast(da, a.shape), unbroadcast(db, b.shape)


def _out_shape(names: tuple[str, str], a: Array, b: Array) -> tuple[int, ...]:
    return (*_broadcast_shape(names, a.shape[:-1], b.shape[:-1]), a.shape[-1])


def one_hot_add(x: Array, shift: Array) -> Array:
    """One-hot of (x + shift) mod K (eq. 5 with sigma = 1; XOR for K = 2).

    y[..., m] = sum_j shift[..., j] x[..., (m - j) mod K]

    Inputs: x : (..., K), shift : (..., K), float32 or float64 of one dtype, one-hot or soft.
    Returns y : (broadcast leading shape, K), exactly one-hot where both inputs are.
    """
    K = _check_operands(("x", "shift"), x, shift)
    return _bilinear(x, shift, _shift_table(K, -1))


def one_hot_add_vjp(x: Array, shift: Array, dy: Array) -> tuple[Array, Array]:
    """(dx, dshift) = dy^T dy/d(x, shift) for y = one_hot_add(x, shift); shapes of x and shift.

    dx[n] = sum_j shift[j] dy[(n + j) mod K],  dshift[j] = sum_m dy[m] x[(m - j) mod K].
    """
    K = _check_operands(("x", "shift"), x, shift)
    check_shape("dy", dy, _out_shape(("x", "shift"), x, shift))
    return _bilinear_vjp(x, shift, _shift_table(K, -1), _shift_table(K, 1), dy)


def one_hot_minus(y: Array, shift: Array) -> Array:
    """One-hot of (y - shift) mod K, the inverse of one_hot_add in its first argument.

    x[..., m] = sum_j shift[..., j] y[..., (m + j) mod K]

    Inputs: y : (..., K), shift : (..., K), float32 or float64 of one dtype, one-hot or soft.
    Returns x : (broadcast leading shape, K), exactly one-hot where both inputs are.
    """
    K = _check_operands(("y", "shift"), y, shift)
    return _bilinear(y, shift, _shift_table(K, 1))


def one_hot_minus_vjp(y: Array, shift: Array, dx: Array) -> tuple[Array, Array]:
    """(dy, dshift) = dx^T dx/d(y, shift) for x = one_hot_minus(y, shift); shapes of y and shift.

    dy[n] = sum_j shift[j] dx[(n - j) mod K],  dshift[j] = sum_m dx[m] y[(m + j) mod K].
    """
    K = _check_operands(("y", "shift"), y, shift)
    check_shape("dx", dx, _out_shape(("y", "shift"), y, shift))
    return _bilinear_vjp(y, shift, _shift_table(K, 1), _shift_table(K, -1), dx)


def one_hot_multiply(x: Array, scale: Array) -> Array:
    """One-hot of (scale * x) mod K, for a scale supported on the units (eq. 5's sigma x).

    y[..., m] = sum_{j unit} scale[..., j] x[..., (m j^-1) mod K]

    Inputs: x : (..., K), scale : (..., K), float32 or float64 of one dtype, one-hot or soft;
    scale must be exactly 0 at every non-unit (0 included), as one_hot_argmax of
    mask_scale_logits gives. Returns y : (broadcast leading shape, K), exactly one-hot where both
    inputs are. Raises ValueError where scale has mass on a non-unit.
    """
    K = _check_operands(("x", "scale"), x, scale)
    _check_scale(scale, K)
    u, table, _ = _scale_tables(K)
    return _bilinear(x, scale[..., u], table)


def one_hot_multiply_vjp(x: Array, scale: Array, dy: Array) -> tuple[Array, Array]:
    """(dx, dscale) = dy^T dy/d(x, scale) for y = one_hot_multiply(x, scale).

    dx[n] = sum_{j unit} scale[j] dy[(n j) mod K],  dscale[j] = sum_m dy[m] x[(m j^-1) mod K]
    at units j and 0 at non-units (the map does not read them).
    """
    K = _check_operands(("x", "scale"), x, scale)
    check_shape("dy", dy, _out_shape(("x", "scale"), x, scale))
    u, table, inverse = _scale_tables(K)
    dx, du = _bilinear_vjp(x, scale[..., u], table, inverse, dy)
    dscale = B.xp().zeros(scale.shape, dtype=du.dtype)
    dscale[..., u] = du
    return dx, dscale


def one_hot_inverse_scale(scale: Array) -> Array:
    """The one-hot of sigma^-1 mod K from that of sigma: s'[..., j] = s[..., j^-1 mod K] at units j,
    0 elsewhere, so that one_hot_multiply(one_hot_multiply(x, s), one_hot_inverse_scale(s)) == x.

    Inputs: scale : (..., K) float32 or float64, exactly 0 at non-units. Returns (..., K), a
    permutation of scale (exact). Raises ValueError where scale has mass on a non-unit.
    """
    K = _check_scale_alone(scale)
    _check_scale(scale, K)
    perm, unit = _inverse_scale_table(K, B.value(scale).dtype)
    return scale[..., perm] * unit


def one_hot_inverse_scale_vjp(scale: Array, dinv: Array) -> Array:
    """dscale = dinv^T d one_hot_inverse_scale(scale) / d scale: dscale[j] = dinv[j^-1 mod K] at units,
    0 elsewhere (the map is an involution on the units). Shapes: scale, dinv : (..., K)."""
    K = _check_scale_alone(scale)
    check_shape("dinv", dinv, tuple(scale.shape))
    perm, unit = _inverse_scale_table(K, B.value(scale).dtype)
    return dinv[..., perm] * unit
