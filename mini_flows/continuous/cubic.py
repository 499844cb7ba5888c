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

The closed form is accurate as it stands (no Newton step): measured over log_b, log_d in [-3, 3],
c_raw in [-6, 6], |eps| <= 1e4 and alpha up to 0.999 (4e6 points each), |f(eps_hat) - z| stays
below 1e-15 max(|z|, |a|, b |eps|, |c|, b |g| / d). What makes it so:
  - the library asinh / acosh; log(X + sqrt(X^2 + 1)) cancels to log(0) = -inf for X << 0;
  - cosh(acosh(|X|) / 3) is well conditioned in |X| near 1 (slope 1/9), so clamping |X| >= 1
    only removes round-off; |X| -> 1 happens for large |r|, where the two complex roots
    -r/3 +- i crowd together relative to the real one;
  - near alpha = 1 both p and q approach 0 (a triple root at alpha = 1, where f' vanishes at
    one point); the error in t is then round-off in p, q divided by f', which is the
    conditioning of the problem itself: the backward error stays at round-off;
  - for |r| >= 1e4 the root is u = r - k / (1 + r^2) to float64 precision (the next term is
    2 k^2 / r^5), and q ~ r^3 would overflow for |r| > 1e102; that branch takes over there;
  - eps is formed as w / b + (u - r) / d, so a large |z| never passes through u.
"""

from __future__ import annotations

from mini_flows import backend as B
from mini_flows.backend import Array

K_MAX = 8 * 3**0.5 / 9
"""NLSq is strictly increasing iff |k| = |c| d / b < K_MAX (supplement B)."""

_FLAT = 1e-5  # e = |p| / cbrt(q)^2 <= _FLAT: t = -cbrt(q) (1 - e/3 + e^3/81 - ...), first order exact to 1.2e-17
_R_ASYM = 1e4  # |r| >= _R_ASYM: u = r - k / (1 + r^2) exact to float64


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


def _float64(v: Array) -> Array:
    return v if B.value(v).dtype == "float64" else v.astype("float64")


def nlsq_inverse(z: Array, a: Array, b: Array, c: Array, d: Array, g: Array) -> Array:
    """eps = f^-1(z) for f(eps) = a + b eps + c / (1 + (d eps + g)^2), the real root of (B.2).

    Computes in float64 and returns z's dtype. Requires b, d > 0 and |c| d / b < 8 sqrt(3) / 9
    (not checked here; ``NLSq`` and ``NLSqTransform`` guarantee it).

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
    w = z - a
    k = c * d / b
    r = d * w / b + g
    big = xp.abs(r) >= _R_ASYM
    r_mid = _where_safe(big, r, 0.0)
    r2 = r_mid * r_mid
    p = 1 - r2 / 3  # (B.3)
    q = k - r_mid * (9 + r2) * (2 / 27)
    t = depressed_cubic_root(p, q)
    r_big = xp.where(big, r, _R_ASYM)
    v = xp.where(big, -(k / r_big) / (r_big + 1 / r_big), t - 2 * r_mid / 3)  # v = u - r
    eps = w / b + v / d
    return eps if dtype == "float64" else eps.astype(dtype)
