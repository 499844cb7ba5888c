"""High-precision oracles for NLSq (mpmath): the exact root of z = f(eps), its condition number,
and the exact log-slope, all for the given floating-point inputs taken as exact numbers; and a
sampler over the range where ``nlsq_inverse`` claims accuracy (shared with
benchmarks/nlsq_accuracy.py).

    f(eps) = a + b eps + c / (1 + s^2),  s = d eps + g,  f'(eps) = b (1 - m),
    m = 2 c d s / (b (1 + s^2)^2)                                          (supplement B)

``cond`` is the problem's own condition number (cubic.py's module docstring): how far the root
moves, in units of u, when every input moves by u relative,

    cond = (|z| + |a| + b |eps| + |c| / (1 + s^2) + b |m| (|eps| + |g| / d)) / f'(eps).
"""

from __future__ import annotations

from typing import Any

import mpmath as mp
import numpy as np

from mini_flows import backend as B
from mini_flows.continuous import NLSq
from mini_flows.continuous.cubic import LOG_SCALE_MAX

DPS = 80  # working digits; F is evaluated to ~1e-80 of its terms, the root certified to 1e-60 of cond


def _mp(*values: float) -> list[mp.mpf]:
    return [mp.mpf(float(v)) for v in values]


def nlsq_root(z: float, a: float, b: float, c: float, d: float, g: float, guess: float) -> tuple[mp.mpf, mp.mpf]:
    """(eps, cond): the root of a + b eps + c / (1 + (d eps + g)^2) = z and its condition number.

    Safeguarded Newton from ``guess`` inside the bracket [(w - |c|) / b, (w + |c|) / b], w = z - a;
    the root is certified by the sign change of the increasing F(eps) = f(eps) - z across
    [eps - h, eps + h], h = 1e-60 cond (AssertionError otherwise).
    """
    with mp.workdps(DPS):
        z, a, b, c, d, g = _mp(z, a, b, c, d, g)
        w = z - a

        def F(e: mp.mpf) -> mp.mpf:
            return b * e + c / (1 + (d * e + g) ** 2) - w

        def slope(e: mp.mpf) -> mp.mpf:
            s = d * e + g
            return b - 2 * c * d * s / (1 + s * s) ** 2

        lo, hi = (w - abs(c)) / b, (w + abs(c)) / b
        x = min(max(mp.mpf(float(guess)), lo), hi) if mp.isfinite(guess) else (lo + hi) / 2
        scale = abs(w) / b + abs(c) / b + mp.mpf(10) ** -320
        for _ in range(5000):
            fx = F(x)
            if fx == 0:
                break
            lo, hi = (x, hi) if fx < 0 else (lo, x)
            x_new = x - fx / slope(x)
            x_new = x_new if lo <= x_new <= hi else (lo + hi) / 2
            done = abs(x_new - x) <= mp.mpf(10) ** (5 - DPS) * (abs(x) + scale)
            x = x_new
            if done:
                break
        s = d * x + g
        den = 1 + s * s
        m = 2 * c * d * s / (b * den * den)
        cond = (abs(z) + abs(a) + b * abs(x) + abs(c) / den + b * abs(m) * (abs(x) + abs(g) / d)) / (b * (1 - m))
        h = cond * mp.mpf(10) ** (20 - DPS)
        assert F(x - h) <= 0 <= F(x + h), f"oracle: root not certified for {(z, a, b, c, d, g)}"
        return x, cond


def nlsq_transform_log_slope(x: float, raw: tuple[float, ...], alpha: float) -> tuple[mp.mpf, mp.mpf]:
    """(log f'(x), dL/ds) exactly for NLSqTransform's raw = (a, log_b, c_raw, log_d, g) and x.

    L = log b + log(1 - alpha tanh(c_raw) psi(s)), psi(s) = K_MAX 2 s / (1 + s^2)^2, s = exp(log_d) x + g.
    """
    with mp.workdps(DPS):
        _, log_b, c_raw, log_d, g = _mp(*raw)
        (x,) = _mp(x)
        k = 8 * mp.sqrt(3) / 9 * mp.mpf(alpha) * mp.tanh(c_raw)
        s = mp.exp(log_d) * x + g

        def one_m(s: mp.mpf) -> mp.mpf:
            return 1 - 2 * k * s / (1 + s * s) ** 2

        return log_b + mp.log(one_m(s)), mp.diff(lambda t: mp.log(one_m(t)), s)


REGIONS = ("random |eps| to 1e20", "near the flat point", "near |r| = 1e4", "d eps cancels g")


def nlsq_from_raw(*raw: np.ndarray, alpha: float) -> NLSq:
    """NLSq.from_raw on the selected backend, from host arrays."""
    return NLSq.from_raw(*map(B.asarray, raw), alpha=alpha)


def draw_in_range(rng: np.random.Generator, n: int, dtype: str, alpha: float) -> tuple[NLSq, np.ndarray, np.ndarray]:
    """(f, eps, region): an NLSq of n entries over the documented range (log_b, log_d in [-40, 40],
    c_raw in [-20, 20], |a|, |g| in [1e-3, 1e15]) and n host points eps : (n,) of ``dtype``, each
    from one of REGIONS (region : (n,) indices): random magnitudes, near the flat point, near
    |r| = 1e4 (the closed form's branch switch), and d eps cancelling a large g (u near 0)."""
    L = LOG_SCALE_MAX

    def sign() -> np.ndarray:
        return rng.choice([-1.0, 1.0], n)

    raw = (sign() * 10 ** rng.uniform(-3, 15, n), rng.uniform(-L, L, n), rng.uniform(-20, 20, n),
           rng.uniform(-L, L, n), sign() * 10 ** rng.uniform(-3, 15, n))
    f = nlsq_from_raw(*(v.astype(dtype) for v in raw), alpha=alpha)
    b, c, d, g = (B.to_numpy(v).astype(np.float64) for v in (f.b, f.c, f.d, f.g))
    region = rng.integers(0, len(REGIONS), n)
    eps = np.choose(region, [
        sign() * 10 ** rng.uniform(-6, 20, n),
        (np.sign(c) / np.sqrt(3) - g) / d + rng.standard_normal(n) * 10 ** rng.uniform(-9, 0, n) / d,
        (sign() * 1e4 * (1 + rng.uniform(-1e-3, 1e-3, n)) - g) / d,
        -g / d * (1 + rng.standard_normal(n) * 10 ** rng.uniform(-12, 0, n)),
    ])
    return f, np.clip(eps, -1e20, 1e20).astype(dtype), region


def oracle_errors(f: NLSq, eps_hat: np.ndarray, z: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ulps, rel): |eps_hat - eps*| / (u cond + underflow floor) and |eps_hat - eps*| / |eps*|
    for each entry of the host array eps_hat, with eps* mpmath's root for z (any backend) and f's
    rounded parameters; u is eps_hat's unit round-off. The floor allows float64 underflow inside
    the solver (a few 5e-324, divided by d) and the dtype's smallest subnormal."""
    dtype = np.dtype(eps_hat.dtype)
    u = np.finfo(dtype).eps / 2
    params = [np.broadcast_to(B.to_numpy(v), eps_hat.shape) for v in (z, f.a, f.b, f.c, f.d, f.g)]
    ulps, rel = [], []
    for i in np.ndindex(eps_hat.shape):
        zi, a, b, c, d, g = (float(v[i]) for v in params)
        root, cond = nlsq_root(zi, a, b, c, d, g, float(eps_hat[i]))
        err = abs(float(eps_hat[i]) - root)
        ulps.append(float(err / (u * cond + np.finfo(dtype).smallest_subnormal + 4 * 5e-324 / d)))
        rel.append(float(err / abs(root)) if root != 0 else float(err != 0) * np.inf)
    return np.array(ulps), np.array(rel)
