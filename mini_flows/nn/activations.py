"""Elementwise activations: ``y, cache = act_forward(x)`` and ``dx = act_backward(cache, dy)``.

Each works on any shape and on float32 or float64; the output keeps the input's dtype.
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array

_W0 = -2 * math.sqrt(2.0 / math.pi)  # -2u = x (_W0 + _W2 x^2) in gelu_forward
_W2 = _W0 * 0.044715


def relu_forward(x: Array) -> tuple[Array, Any]:
    """f(x) = x where x > 0, else 0 (-0.0 for x < 0; NaN stays NaN, and so does an overflowed
    -inf, which becomes NaN rather than a silent 0). Written as x (x > 0) rather than ``maximum``, so
    that autograd's derivative at the kink x = 0 is 0, as ``relu_backward``'s (``maximum`` splits
    it), and rather than ``where``, which takes 5x as long on NumPy."""
    return x * (x > 0), x


def relu_backward(cache: Any, dy: Array) -> Array:
    """f'(x) = 1 where x > 0, else 0."""
    return dy * (cache > 0)


def tanh_forward(x: Array) -> tuple[Array, Any]:
    """f(x) = tanh(x)."""
    y = B.xp().tanh(x)
    return y, y


def tanh_backward(cache: Any, dy: Array) -> Array:
    """f'(x) = 1 - tanh(x)^2."""
    return dy * (1 - cache * cache)


def sigmoid(x: Array) -> Array:
    """1 / (1 + exp(-x)), written as (1 + tanh(x / 2)) / 2 so it never overflows."""
    return 0.5 * (1 + B.xp().tanh(0.5 * x))


def sigmoid_forward(x: Array) -> tuple[Array, Any]:
    """f(x) = 1 / (1 + exp(-x))."""
    y = sigmoid(x)
    return y, y


def sigmoid_backward(cache: Any, dy: Array) -> Array:
    """f'(x) = f(x) (1 - f(x))."""
    return dy * cache * (1 - cache)


def exp_limit(dtype: Any) -> float:
    """The largest whole z with exp(z) finite in ``dtype`` (88 in float32, 709 in float64)."""
    return float(math.floor(math.log(float(B.xp().finfo(dtype).max))))


def exp_cap(a: Array) -> Array:
    """``exp_limit`` of a's dtype as a row as long as a's last axis, for ``minimum(z, cap)`` before
    an exp: NumPy's minimum broadcasts a row about as fast as a multiply, a scalar 3-4x slower
    (0.45 against 0.12-0.15 ms on (2048, 256) float32)."""
    v = B.value(a)
    return B.xp().full(v.shape[-1:], exp_limit(v.dtype), v.dtype)


def gelu_forward(x: Array) -> tuple[Array, Any]:
    """GELU, tanh form: f(x) = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).

    Computed as f(x) = x / v with v = 1 + exp(-2u), since (1 + tanh u)/2 = 1 / (1 + exp(-2u)): one
    exp instead of one tanh, which NumPy evaluates 2x (float32) to 4x (float64) slower. Here
    -2u = x w with w = -2 sqrt(2/pi) (1 + 0.044715 x^2). exp(-2u) is capped where it would
    overflow (x below about -10 in float32, -21 in float64), where f is 0 to round-off anyway.
    """
    xp = B.xp()
    w = _W0 + _W2 * (x * x)
    v = 1 + xp.exp(xp.minimum(x * w, exp_cap(x)))
    y = x / v
    return y, (w, v, y)


def gelu_backward(cache: Any, dy: Array) -> Array:
    """f'(x) = 1/v + x (v - 1) / v^2 d(2u)/dx = (1 + y (v - 1) d(2u)/dx) / v, where
    d(2u)/dx = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2) = 2 w_0 - 3 w (w_0 = w at x = 0).

    In place on one temporary: the backward pass is not traced by autograd."""
    w, v, y = cache
    d = w * -3
    d += 2 * _W0  # d(2u)/dx
    d *= y
    d *= v - 1
    d += 1
    d /= v
    d *= dy
    return d


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "gelu": (gelu_forward, gelu_backward),
}


def activation(name: str) -> tuple[Any, Any]:
    """The (forward, backward) pair of an activation by name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
