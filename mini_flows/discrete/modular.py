"""Arithmetic modulo K on one-hot vectors: the location-scale map of discrete flows.

Tran et al. (2019), section 3.2, equation 5: y = (mu + sigma * x) mod K, invertible where sigma is
a unit (coprime with K), with inverse x = sigma^-1 (y - mu) mod K. XOR is the case K = 2, sigma = 1.

Values in {0, ..., K-1} are one-hot vectors of shape (..., K). As maps of vectors the operations
are bilinear, e.g. for addition

    y[..., m] = sum_j shift[..., j] x[..., (m - j) mod K],

and that bilinear map is what the straight-through estimator (section 3.3) differentiates. But the
flows only ever evaluate it, and its derivatives, at one-hot points, where every sum has a single
non-zero term. There it is integer arithmetic on the argmax indices, and each vector-Jacobian
product is a gather of the incoming gradient at indices given by the other operand; for
y = x + s mod K:

    dx[k] = dy[(k + s) mod K],    ds[j] = dy[(x + j) mod K].

So every operation here costs O(K) per position in time and memory (the bilinear form costs
O(K^2)), and its results are exactly one-hot in float32 and float64 alike. The tests keep the
bilinear definition as the oracle: equal forwards bit for bit, equal VJPs to round-off.

Two layers:
- ``one_hot_add``, ``one_hot_minus``, ``one_hot_multiply``, ``one_hot_inverse_scale`` and their
  ``_vjp``s check their operands (dtype, shape, finite, exactly one-hot, scale on a unit); leading
  axes broadcast against each other.
- ``location_scale``, ``inverse_location_scale`` and ``inverse_location_scale_vjp`` are eq. 5 and
  its inverse fused into one index computation each, the flows' hot path. They check nothing: the
  flows check x and y at their public entry, and mu and sigma are argmaxes, one-hot by
  construction. Operands there share one shape.

Every forward is an autograd primitive whose VJP is the hand-written one, so autograd can
differentiate the flows' own forward code (gradient checks of the flows rest on this).

References: Tran, Vafa, Agrawal, Dinh, Poole. Discrete Flows: Invertible Generative Models of
Discrete Data. NeurIPS 2019.
"""

from __future__ import annotations

import functools
import math
import operator
from numbers import Integral
from typing import Any

from autograd.extend import defvjp_argnums, primitive

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import broadcast_shapes, check_float, check_positive_int, check_shape
from mini_flows.discrete.one_hot import check_exactly_one_hot
from mini_flows.nn.broadcast import unbroadcast
from mini_flows.nn.losses import one_hot


def units(K: int) -> tuple[int, ...]:
    """The residues j in [1, K) with gcd(j, K) = 1: the invertible scales modulo K."""
    check_positive_int("K", K, minimum=2)
    return tuple(j for j in range(1, K) if math.gcd(j, K) == 1)


_ARRAY_K_LIMIT = 2**62


def mod_inverse(a: Any, K: int) -> Any:
    """a^-1 mod K: the b in [0, K) with a b = 1 (mod K), by the extended Euclidean algorithm.

    Inputs: a : an int (Python or NumPy), or an integer array of any shape and backend
    (vectorised; negative entries are reduced mod K first); K : int >= 2, below 2**62 for an array.
    Returns an int for an int, an int64 array of a's shape for an array.
    Raises ValueError naming a and K where gcd(a, K) != 1, for K < 2, and for an array with
    K >= 2**62; TypeError for a non-integer a.

    The iteration keeps r_{i-1} = s_{i-1} a (mod K) with r_0 = a, r_1 = K; it stops (entry by
    entry) at r_i = 0, where r_{i-1} = gcd(a, K) and s_{i-1} is the inverse when that gcd is 1.
    A fixed number of steps, 2 bit_length(K) + 2, bounds Euclid's (Lame's theorem), so arrays
    need no data-dependent loop. An int runs on Python ints, exact for every K; an array on int64,
    where |r|, |s| <= K and every intermediate of a live entry stays below 2 K (hence the bound).
    """
    K = check_positive_int("K", K, minimum=2)
    scalar = isinstance(a, Integral) and not isinstance(a, bool)
    if scalar:
        a = operator.index(a)
    else:
        v = B.value(a)
        if not hasattr(v, "dtype") or not B.is_integer(v):
            raise TypeError(f"a must be an int or an integer array, got {getattr(v, 'dtype', type(a).__name__)}")
        if K >= _ARRAY_K_LIMIT:
            raise ValueError(f"K = {K} is too large for an array a: its inverses are computed in int64, which needs "
                             "K < 2**62; pass the entries one by one as ints")
        a = (v % K if v.dtype == "uint64" else v).astype("int64")  # uint64 above 2**63 would wrap negative
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


# --- integer kernels: indices in, indices or gathered gradients out --------------------------------


@functools.lru_cache(maxsize=None)
def _tables(K: int, backend: str) -> tuple[Array, Array, Array]:
    """(K,) tables on ``backend``: arange(K); inv[j] = j^-1 mod K at units, 0 elsewhere; and the
    unit indicator (bool). Built once per K and backend."""
    unit = [math.gcd(j, K) == 1 for j in range(K)]
    inv = [mod_inverse(j, K) if is_unit else 0 for j, is_unit in enumerate(unit)]
    return B.xp().arange(K), B.asarray(inv, "int64"), B.asarray(unit)


def _tables_for(K: int) -> tuple[Array, Array, Array]:
    return _tables(K, B.get_backend())


def unit_mask(K: int) -> Array:
    """(K,) booleans on the current backend: True at the residues coprime with K, the invertible
    scales (built once per K and backend)."""
    return _tables_for(K)[2]


def _index(a: Array) -> Array:
    """(..., K) one-hot -> (...) integer index of its 1.0."""
    return B.xp().argmax(B.value(a), axis=-1)


def _gather(d: Array, index: Array) -> Array:
    """out[..., k] = d[..., index[..., k]] for an integer index (..., K) in [0, K) that broadcasts
    against d (..., K); out has d's shape. One flat gather, O(K) per position."""
    xp = B.xp()
    K = d.shape[-1]
    rows = xp.arange(0, d.size, K).reshape(*d.shape[:-1], 1)
    return xp.ascontiguousarray(d).reshape(-1)[index + rows]


def _affine_index(a: Any, b: Any, K: int) -> Array:
    """(a[..., None] * arange(K) + b[..., None]) mod K, shape (..., K): the index table of k -> a k + b;
    a and b are integer arrays (or Python ints) that broadcast."""
    k = _tables_for(K)[0]
    a = a[..., None] if hasattr(a, "ndim") else a
    b = b[..., None] if hasattr(b, "ndim") else b
    return (a * k + b) % K


# --- the checked one-hot operations -----------------------------------------------------------------


def _check_operands(names: tuple[str, str], a: Array, b: Array) -> int:
    """Validate two (..., K) one-hot float arrays of one dtype with broadcastable leading axes; return K."""
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
    broadcast_shapes(va.shape[:-1], vb.shape[:-1], f"the leading axes of {names[0]} and {names[1]},")
    if names[1] == "scale":
        _check_scale(b, K)
    for name, v in zip(names, (va, vb)):
        check_exactly_one_hot(name, v)
    return K


def _check_scale(scale: Array, K: int) -> None:
    """ValueError unless scale is zero at every non-unit (0 included)."""
    unit = unit_mask(K)
    if bool(B.xp().any((B.value(scale) != 0) & ~unit)):
        non_units = [j for j in range(K) if math.gcd(j, K) != 1]
        raise ValueError(
            f"scale puts mass on values not coprime with K = {K} (non-units {non_units[:10]}), which are not "
            "invertible; mask its logits with mask_scale_logits"
        )


def _check_gradient(name: str, d: Array, names: tuple[str, str], a: Array, b: Array) -> None:
    leading = broadcast_shapes(a.shape[:-1], b.shape[:-1], f"the leading axes of {names[0]} and {names[1]},")
    check_shape(name, d, (*leading, a.shape[-1]))


@primitive
def one_hot_add(x: Array, shift: Array) -> Array:
    """One-hot of (x + shift) mod K (eq. 5 with sigma = 1; XOR for K = 2).

    Inputs: x : (..., K), shift : (..., K), exactly one-hot, float32 or float64 of one dtype.
    Returns y : (broadcast leading shape, K), one-hot of x's dtype.
    """
    K = _check_operands(("x", "shift"), x, shift)
    return one_hot((_index(x) + _index(shift)) % K, K, B.value(x).dtype)


def one_hot_add_vjp(x: Array, shift: Array, dy: Array) -> tuple[Array, Array]:
    """(dx, dshift) = dy^T dy/d(x, shift) for y = one_hot_add(x, shift), the bilinear map's
    derivative at one-hot x and shift; shapes of x and shift.

    dx[k] = dy[(k + shift) mod K],  dshift[j] = dy[(x + j) mod K].
    """
    K = _check_operands(("x", "shift"), x, shift)
    _check_gradient("dy", dy, ("x", "shift"), x, shift)
    dx = _gather(dy, _affine_index(1, _index(shift), K))
    dshift = _gather(dy, _affine_index(1, _index(x), K))
    return unbroadcast(dx, x.shape), unbroadcast(dshift, shift.shape)


@primitive
def one_hot_minus(y: Array, shift: Array) -> Array:
    """One-hot of (y - shift) mod K, the inverse of one_hot_add in its first argument.

    Inputs: y : (..., K), shift : (..., K), exactly one-hot, float32 or float64 of one dtype.
    Returns x : (broadcast leading shape, K), one-hot of y's dtype.
    """
    K = _check_operands(("y", "shift"), y, shift)
    return one_hot((_index(y) - _index(shift)) % K, K, B.value(y).dtype)


def one_hot_minus_vjp(y: Array, shift: Array, dx: Array) -> tuple[Array, Array]:
    """(dy, dshift) = dx^T dx/d(y, shift) for x = one_hot_minus(y, shift), at one-hot y and shift.

    dy[k] = dx[(k - shift) mod K],  dshift[j] = dx[(y - j) mod K].
    """
    K = _check_operands(("y", "shift"), y, shift)
    _check_gradient("dx", dx, ("y", "shift"), y, shift)
    dy = _gather(dx, _affine_index(1, -_index(shift), K))
    dshift = _gather(dx, _affine_index(-1, _index(y), K))
    return unbroadcast(dy, y.shape), unbroadcast(dshift, shift.shape)


@primitive
def one_hot_multiply(x: Array, scale: Array) -> Array:
    """One-hot of (scale * x) mod K, for a scale on a unit (eq. 5's sigma x).

    Inputs: x : (..., K), scale : (..., K), exactly one-hot, float32 or float64 of one dtype;
    scale's 1.0 must sit on a unit, as one_hot_argmax of mask_scale_logits gives. Returns
    y : (broadcast leading shape, K), one-hot of x's dtype. Raises ValueError where scale has
    mass on a non-unit.
    """
    K = _check_operands(("x", "scale"), x, scale)
    return one_hot((_index(scale) * _index(x)) % K, K, B.value(x).dtype)


def one_hot_multiply_vjp(x: Array, scale: Array, dy: Array) -> tuple[Array, Array]:
    """(dx, dscale) = dy^T dy/d(x, scale) for y = one_hot_multiply(x, scale), at one-hot x and scale.

    dx[k] = dy[(k scale) mod K],  dscale[j] = dy[(x j) mod K] at units j, 0 at non-units (the
    bilinear map does not read them).
    """
    K = _check_operands(("x", "scale"), x, scale)
    _check_gradient("dy", dy, ("x", "scale"), x, scale)
    dx = _gather(dy, _affine_index(_index(scale), 0, K))
    dscale = _gather(dy, _affine_index(_index(x), 0, K)) * unit_mask(K)
    return unbroadcast(dx, x.shape), unbroadcast(dscale, scale.shape)


def _check_scale_alone(scale: Array) -> int:
    """Validate a (..., K) one-hot float array with K >= 2 and its 1.0 on a unit; return K."""
    check_float("scale", scale)
    shape = tuple(B.value(scale).shape)
    if len(shape) < 1 or shape[-1] < 2:
        raise ValueError(f"scale must have shape (..., K) with K >= 2, got {shape}")
    _check_scale(scale, shape[-1])
    check_exactly_one_hot("scale", scale)
    return shape[-1]


@primitive
def one_hot_inverse_scale(scale: Array) -> Array:
    """The one-hot of sigma^-1 mod K from that of sigma: s'[..., j] = s[..., j^-1 mod K] at units j,
    0 elsewhere, so that one_hot_multiply(one_hot_multiply(x, s), one_hot_inverse_scale(s)) == x.

    Inputs: scale : (..., K) float32 or float64, exactly one-hot on a unit. Returns (..., K), a
    permutation of scale. Raises ValueError where scale has mass on a non-unit.
    """
    K = _check_scale_alone(scale)
    _, inv, unit = _tables_for(K)
    return B.value(scale)[..., inv] * unit


def one_hot_inverse_scale_vjp(scale: Array, dinv: Array) -> Array:
    """dscale = dinv^T d one_hot_inverse_scale(scale) / d scale: dscale[j] = dinv[j^-1 mod K] at units,
    0 elsewhere (the map is an involution on the units). Shapes: scale, dinv : (..., K)."""
    K = _check_scale_alone(scale)
    check_shape("dinv", dinv, tuple(scale.shape))
    _, inv, unit = _tables_for(K)
    return dinv[..., inv] * unit


# --- eq. 5 fused, the flows' hot path (unchecked) -----------------------------------------------------


@primitive
def location_scale(x: Array, mu: Array, sigma: Array | None) -> Array:
    """Eq. 5: y = (mu + sigma x) mod K (sigma = 1 when None), base -> data.

    Inputs: x, mu, sigma : one shape (..., K), exactly one-hot (not checked), sigma on a unit.
    Returns y : (..., K) one-hot of x's dtype.
    """
    K = x.shape[-1]
    ix = _index(x) if sigma is None else _index(sigma) * _index(x)
    return one_hot((_index(mu) + ix) % K, K, B.value(x).dtype)


@primitive
def inverse_location_scale(y: Array, mu: Array, sigma: Array | None) -> Array:
    """The inverse of eq. 5: x = sigma^-1 (y - mu) mod K (sigma = 1 when None), data -> base.

    Inputs: y, mu, sigma : one shape (..., K), exactly one-hot (not checked), sigma on a unit.
    Returns x : (..., K) one-hot of y's dtype.
    """
    K = y.shape[-1]
    r = (_index(y) - _index(mu)) % K
    ix = r if sigma is None else (_tables_for(K)[1][_index(sigma)] * r) % K
    return one_hot(ix, K, B.value(y).dtype)


def inverse_location_scale_vjp(y: Array, mu: Array, sigma: Array | None, dx: Array) -> tuple[Array, Array, Any]:
    """(dy, dmu, dsigma) for x = inverse_location_scale(y, mu, sigma), the bilinear maps' derivatives
    at one-hot points; dsigma is None when sigma is. With t = sigma^-1 and r = y - mu (mod K):

        dy[k] = dx[(k - mu) t mod K],  dmu[j] = dx[(y - j) t mod K],  dsigma[j] = dx[r j^-1 mod K]

    (dsigma at units j, 0 elsewhere). Shapes: all (..., K).
    """
    K = y.shape[-1]
    _, inv, unit = _tables_for(K)
    iy, imu = _index(y), _index(mu)
    if sigma is None:
        return _gather(dx, _affine_index(1, -imu, K)), _gather(dx, _affine_index(-1, iy, K)), None
    t = inv[_index(sigma)]
    dy = _gather(dx, _affine_index(t, -imu * t, K))
    dmu = _gather(dx, _affine_index(-t, iy * t, K))
    dsigma = _gather(dx, (((iy - imu) % K)[..., None] * inv) % K) * unit
    return dy, dmu, dsigma


# --- autograd: each primitive's VJP is the hand-written one ------------------------------------------


def _vjp_maker(vjp: Any) -> Any:
    """defvjp_argnums maker: the VJP w.r.t. the traced arguments, from a hand-written vjp(*args, g)."""
    return lambda argnums, ans, args, kwargs: lambda g: tuple(vjp(*args, g)[i] for i in argnums)


defvjp_argnums(one_hot_add, _vjp_maker(one_hot_add_vjp))
defvjp_argnums(one_hot_minus, _vjp_maker(one_hot_minus_vjp))
defvjp_argnums(one_hot_multiply, _vjp_maker(one_hot_multiply_vjp))
defvjp_argnums(one_hot_inverse_scale, _vjp_maker(lambda scale, g: (one_hot_inverse_scale_vjp(scale, g),)))
defvjp_argnums(inverse_location_scale, _vjp_maker(inverse_location_scale_vjp))
