"""The analytic inverse of the NLSq transform: the one real root of a cubic (paper supplement B).

Solving

    z = f(eps) = a + b eps + c / (1 + (d eps + g)^2)                                  (B.1)

for eps is the paper's cubic
    -b d^2 eps^3 + ((z - a) d^2 - 2 d g b) eps^2 + (2 d g (z - a) - b (g^2 + 1)) eps
    + ((z - a)(g^2 + 1) - c) = 0.
Here it is written in scaled variables first. With w = z - a, u = d eps + g, r = d w / b + g and
k = c d / b, (B.1) reads u + k / (1 + u^2) = r, that is

    u^3 - r u^2 + u + (k - r) = 0,                                                    (B.2)

which is the paper's cubic times -d / b, written in u. The map is strictly increasing exactly when
|k| < 8 sqrt(3) / 9 (b > 9 / (8 sqrt 3) |c| d); then (B.2) has one real root. Putting u = t + r/3
gives the depressed cubic t^3 + p t + q = 0 with

    p = 1 - r^2 / 3,    q = k - 2 r (9 + r^2) / 27,                                   (B.3)

whose real root has a hyperbolic closed form (Holmes 2002), with X = q / (2 (|p|/3)^(3/2)):

    p > 0:  t = -2 sqrt(p/3) sinh(asinh(X) / 3),
    p < 0:  t = -2 sign(q) sqrt(-p/3) cosh(acosh(|X|) / 3)   (|X| >= 1: one real root),
    p ~ 0:  t = -cbrt(q) + p / (3 cbrt(q))                    (first order in p; X would overflow).

The hyperbolic forms lose about log(2 |X|) / 3 ulps (the round-off of asinh(X) ~ log(2 |X|)
becomes a relative error of sinh(asinh(X) / 3)); the cube-root form takes over at |X| ~ 1e8.

The closed form alone has a small backward error but not always a small forward error: the
real root of (B.2) comes out as t - 2r/3 (or r - k / (1 + r^2) for large |r|), whose absolute
error is about u |r| (u the unit round-off), and eps = w / b + (u - r) / d divides it by d. With
d tiny and |g| large (log_d = -17, g = 8000) that is 1e-5 absolute in an eps near -1 that the
problem itself fixes to an ulp. One Newton step on (B.2) in v = u - r, from the closed form,

    v <- v - (v + k / (1 + u^2)) / (1 - m(u)),    u = r + v,                           (B.4)

puts the error of v at round-off in its own terms (u |v| + u |m u|), which the conditioning
below covers. The step is kept only where it does not raise the residual |G(v)|, G(v) =
v + k / (1 + (r + v)^2) (increasing in v): within about cbrt(u) of the triple root at alpha -> 1
the closed form is already as good as the data allow, while Newton, started near the flat
point where the slope is only gap, can overshoot by far. The slope 1 - m(u) = f'(eps) / b,
m(u) = 2 k u / (1 + u^2)^2 (supplement B's f'(eps)), is a sum of non-negative terms, with no
cancellation however close alpha is to 1:

    1 - m(u) = gap + (|k| / K_MAX) (u - sigma s0)^2 (u^2 + 2 sigma s0 u + 3) / (1 + u^2)^2,   (B.5)

sigma = sign k, s0 = 1 / sqrt 3, gap = 1 - |k| / K_MAX = the least slope over b (at u = sigma s0),
since (1 + u^2)^2 - 2 K_MAX u = (u - s0)^2 (u^2 + 2 s0 u + 3).

Accuracy (measured: benchmarks/nlsq_accuracy.py; tested against mpmath in tests/continuous).
For finite inputs with

    b, d in [exp(-LOG_SCALE_MAX), exp(LOG_SCALE_MAX)] = [4.2e-18, 2.4e17],  |c| d / b < K_MAX,
    and |z - a| / b, |c| / b at most half the dtype's largest number (so eps cannot overflow),

the result is within a few u cond(eps) of the exact root eps of the given (rounded) inputs, u the
unit round-off of z's dtype (2^-53 or 2^-24), where

    cond(eps) = (|z| + |a| + b |eps| + |c| / (1 + s^2) + b |m| (|eps| + |g| / d)) / f'(eps),
    s = d eps + g,  m = 2 c d s / (b (1 + s^2)^2),  f'(eps) = b (1 - m)

is the problem's own condition number: how far eps moves when every input moves by u relative.
Any alpha < 1 is covered (cond grows like 1 / (1 - alpha) at the flat point); |k| is capped an
ulp below K_MAX, and |c| d / b up to 8 ulps of z's dtype past K_MAX is accepted, since rounding c
to that dtype alone can carry it there (NLSqTransform in float32 at alpha ~ 1). Outside the range ``nlsq_inverse`` raises FlowRangeError (a
ValueError) saying which input and where. What else keeps the closed form sound:
  - the library asinh / acosh; log(X + sqrt(X^2 + 1)) cancels to log(0) = -inf for X << 0;
  - cosh(acosh(|X|) / 3) is well conditioned in |X| near 1 (slope 1/9), so clamping |X| >= 1
    only removes round-off; |X| -> 1 happens for large |r|, where the two complex roots
    -r/3 +- i crowd together relative to the real one;
  - near alpha = 1 both p and q approach 0 (a triple root at alpha = 1, where f' vanishes at
    one point); the backward error stays at round-off;
  - for |r| >= 1e4 the root is u = r - k / (1 + r^2) to within 2 k^2 / r^5, and q ~ r^3 would
    overflow for |r| > 1e102; that branch takes over there;
  - eps is formed as w / b + v / d, so a large |z| never passes through u; r is formed from w / b
    clipped to 1e100, beyond which v / d (|v| < 1.6, d >= 4e-18) is below an ulp of eps.
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.continuous.errors import raise_where

K_MAX = 8 * 3**0.5 / 9
"""NLSq is strictly increasing iff |k| = |c| d / b < K_MAX (supplement B)."""

LOG_SCALE_MAX = 40.0
"""``nlsq_inverse`` is accurate for b, d in [exp(-LOG_SCALE_MAX), exp(LOG_SCALE_MAX)] and raises outside."""

_FLAT = 1e-5  # e = |p| / cbrt(q)^2 <= _FLAT: t = -cbrt(q) (1 - e/3 + e^3/81 - ...), first order exact to 1.2e-17
_R_ASYM = 1e4  # |r| >= _R_ASYM: u = r - k / (1 + r^2) to within 2 k^2 / r^5, which (B.4) removes
_S0 = 1 / 3**0.5  # the least slope lies at u = sign(k) _S0
_K_CAP = K_MAX * (1 - 2**-52)  # |k| is capped an ulp or two below K_MAX, so gap = 1 - |k| / K_MAX > 0
_BIG = 1e100  # |w / b| and |u| are clipped here in float64; beyond it v / d is below an ulp of eps
_SCALE_SLACK = 1 + 2**-20  # exp(+-LOG_SCALE_MAX) rounded to float32 still passes
_SCALE_LO = math.exp(-LOG_SCALE_MAX) / _SCALE_SLACK
_SCALE_HI = math.exp(LOG_SCALE_MAX) * _SCALE_SLACK


def _where_safe(mask: Array, x: Array, fill: float) -> Array:
    """x where mask is false, ``fill`` where it is true (keeps unused branches free of 0/0, inf)."""
    return B.xp().where(mask, fill, x)


def _cbrt(q: Array) -> Array:
    """The real cube root of q != 0. autograd has no VJP for ``cbrt``, and |q| ** (1/3) alone is
    off by |ln |q|| 2e-17 relative (1/3 is not a float); one Newton step brings it to round-off."""
    xp = B.xp()
    aq = xp.abs(q)
    c0 = aq ** (1 / 3)
    return xp.sign(q) * (c0 + (aq / (c0 * c0) - c0) / 3)


def depressed_cubic_root(p: Array, q: Array) -> Array:
    """The real root t of t^3 + p t + q = 0, for cubics with one real root (4 p^3 + 27 q^2 > 0).

    Holmes' hyperbolic closed form (see the module docstring), elementwise and without complex
    arithmetic; branches are chosen with ``where`` so it vectorises and autograd can trace it.

    Parameters
    ----------
    p, q : (...) float arrays, broadcastable.

    Returns
    -------
    t : (...) the real root, in the arrays' dtype.
    """
    xp = B.xp()
    q_nz = _where_safe(q == 0, q, 1.0)
    cq = _cbrt(q_nz)
    flat = (xp.abs(p) <= _FLAT * cq * cq) & (q != 0)
    ap = _where_safe(flat | (p == 0), xp.abs(p), 1.0)
    m = xp.sqrt(ap / 3)
    x = q / (2 * m * m * m)  # (3 q / (2 |p|)) sqrt(3 / |p|)
    t_sinh = -2 * m * xp.sinh(xp.arcsinh(x) / 3)
    x_cosh = xp.maximum(_where_safe(flat | (p > 0), xp.abs(x), 2.0), 1.0)  # clamp round-off below 1
    t_cosh = -2 * m * xp.sign(q) * xp.cosh(xp.arccosh(x_cosh) / 3)
    t_flat = -cq + p / (3 * cq)
    return xp.where(flat, t_flat, xp.where(p > 0, t_sinh, t_cosh))


def one_minus_m(s: Array, k: Array, gap: Array) -> Array:
    """The NLSq slope over b, f'(eps) / b = 1 - m(s), m(s) = 2 k s / (1 + s^2)^2, by (B.5).

    A sum of non-negative terms, so it keeps its relative accuracy however close the least slope
    ``gap`` = 1 - |k| / K_MAX is to 0 (alpha -> 1), in float32 too; the caller passes ``gap``
    computed without cancellation where it can (``NLSqTransform``: (1 - alpha) + alpha (1 - |tanh c_raw|)).

    Parameters
    ----------
    s, k, gap : (...) float arrays, broadcastable; |s| small enough that s^4 fits the dtype.

    Returns
    -------
    (...) the broadcast shape, in (0, 2).
    """
    xp = B.xp()
    sigma = xp.copysign(1.0, B.value(k))  # a constant to autograd, in k's dtype
    den = 1 + s * s
    shape = ((s - sigma * _S0) ** 2 / den) * ((s * s + 2 * _S0 * sigma * s + 3) / den)
    return gap + (sigma * k / K_MAX) * shape


def _bump(k: Array, u: Array) -> Array:
    """k / (1 + u^2), as (k / u) / (u + 1 / u) for |u| >= 1 so no u, however large, overflows."""
    xp = B.xp()
    large = xp.abs(u) >= 1
    u_large = xp.where(large, u, 1.0)
    u_small = _where_safe(large, u, 0.0)
    return xp.where(large, (k / u_large) / (u_large + 1 / u_large), k / (1 + u_small * u_small))


def _float64(v: Array) -> Array:
    return v if B.value(v).dtype == "float64" else v.astype("float64")


def _checked_w_k(dtype: Any, z: Array, a: Array, b: Array, c: Array, d: Array, g: Array) -> tuple[Array, Array]:
    """w = z - a and k = c d / b, after raising FlowRangeError where the float64 inputs leave the
    range of the module docstring's accuracy claim (each check before the arithmetic it guards)."""
    xp = B.xp()
    values = dict(z=z, a=a, b=b, c=c, d=d, g=g)
    finite = {name: xp.isfinite(v) for name, v in values.items()}
    scaled = {name: (v >= _SCALE_LO) & (v <= _SCALE_HI) for name, v in (("b", b), ("d", d))}
    if not bool(xp.all(_all_of(*finite.values(), *scaled.values()))):  # one sync when all is well
        for name, ok in finite.items():
            raise_where(~ok, f"nlsq_inverse: {name} contains NaN or infinity", values)
        for name, ok in scaled.items():
            raise_where(~ok, f"nlsq_inverse: {name} lies outside [exp(-{LOG_SCALE_MAX:g}), exp({LOG_SCALE_MAX:g})], "
                        "the range where the inverse is accurate", values)
    w, k = z - a, c * d / b
    increasing = xp.abs(k) < K_MAX * (1 + 8 * float(xp.finfo(dtype).eps) / 2)
    no_overflow = xp.maximum(xp.abs(w), xp.abs(c)) / (float(xp.finfo(dtype).max) / 2) <= b
    if not bool(xp.all(increasing & no_overflow)):
        raise_where(~increasing, "nlsq_inverse: |c| d / b >= 8 sqrt(3) / 9, so f is not strictly increasing "
                    "(build it with NLSq.from_raw)", values)
        raise_where(~no_overflow, f"nlsq_inverse: |z - a| / b or |c| / b exceeds half of {dtype}'s largest number, "
                    "so the root eps may overflow", values)
    return w, k


def _all_of(*masks: Array) -> Array:
    """The elementwise AND of boolean arrays, broadcast."""
    out = masks[0]
    for m in masks[1:]:
        out = out & m
    return out


def nlsq_inverse(z: Array, a: Array, b: Array, c: Array, d: Array, g: Array) -> Array:
    """eps = f^-1(z) for f(eps) = a + b eps + c / (1 + (d eps + g)^2): the real root of (B.2) in
    closed form, polished by one Newton step (B.4).

    Computes in float64 and returns z's dtype, within a few ulps of the problem's conditioning
    over the range stated in the module docstring (b, d in [exp(-40), exp(40)], |c| d / b < K_MAX,
    no overflow of eps); outside it raises FlowRangeError (a ValueError) naming the input and the
    first offending index.

    Parameters
    ----------
    z, a, b, c, d, g : (...) float arrays, broadcastable.

    Returns
    -------
    eps : (...) the broadcast shape, z's dtype.
    """
    xp = B.xp()
    dtype = B.value(z).dtype
    z, a, b, c, d, g = (_float64(v) for v in (z, a, b, c, d, g))
    w, k = _checked_w_k(dtype, z, a, b, c, d, g)
    k = xp.minimum(xp.maximum(k, -_K_CAP), _K_CAP)
    wb = w / b
    r = d * xp.minimum(xp.maximum(wb, -_BIG), _BIG) + g
    big = xp.abs(r) >= _R_ASYM
    r_mid = _where_safe(big, r, 0.0)
    r2 = r_mid * r_mid
    p = 1 - r2 / 3  # (B.3)
    q = k - r_mid * (9 + r2) * (2 / 27)
    t = depressed_cubic_root(p, q)
    r_big = xp.where(big, r, _R_ASYM)
    v = xp.where(big, -(k / r_big) / (r_big + 1 / r_big), t - 2 * r_mid / 3)  # v = u - r
    residual = v + _bump(k, r + v)  # the left side of (B.2) over u^2 + 1, in v
    slope = one_minus_m(xp.minimum(xp.maximum(r + v, -_BIG), _BIG), k, 1 - xp.abs(k) / K_MAX)  # (B.5); u^4 must fit
    v_newton = v - residual / slope  # (B.4)
    v = xp.where(xp.abs(v_newton + _bump(k, r + v_newton)) <= xp.abs(residual), v_newton, v)
    eps = wb + v / d
    return eps if dtype == "float64" else eps.astype(dtype)
