"""Straight-through one-hot argmax and the scale mask (Tran et al. 2019, section 3.3).

The flow's network gives K logits theta per position for the location (and the scale). The
forward pass uses their exact one-hot argmax (eq. 6),

    mu = one_hot(argmax(theta)),

and the backward pass replaces its (zero) Jacobian with that of the softmax at temperature tau,

    d mu / d theta  ~  d softmax(theta / tau) / d theta,    tau = 0.1 by default.

Scale logits are masked first: every value not coprime with K (0 included) gets a large negative
finite logit, so the argmax is always a unit and sigma is invertible modulo K.

For gradient checks the forward is an autograd primitive with the same surrogate rule, so autograd
on the library's own forward code computes the straight-through gradient too.

References: Tran, Vafa, Agrawal, Dinh, Poole. Discrete Flows: Invertible Generative Models of
Discrete Data. NeurIPS 2019. Bengio, Leonard, Courville. Estimating or Propagating Gradients
Through Stochastic Neurons for Conditional Computation. 2013.
"""

from __future__ import annotations

import math
from typing import Any

from autograd.extend import defvjp, primitive

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_number, check_positive_int, check_shape
from mini_flows.discrete.modular import unit_mask
from mini_flows.nn.losses import softmax_backward, softmax_forward


def _check_logits(logits: Array) -> int:
    """Validate logits : (..., K), float32/float64, finite, K >= 2; return K."""
    check_float("logits", logits)
    shape = tuple(B.value(logits).shape)
    if len(shape) < 1 or shape[-1] < 2:
        raise ValueError(f"logits must have shape (..., K) with K >= 2, got {shape}")
    return shape[-1]


@primitive
def _hard_one_hot(logits: Array, tau: float) -> Array:
    """one_hot(argmax(logits)) along the last axis, first index on ties, logits' dtype."""
    xp = B.xp()
    index = xp.argmax(logits, axis=-1)
    return (index[..., None] == xp.arange(logits.shape[-1])).astype(logits.dtype)


def one_hot_argmax(logits: Array, tau: float = 0.1) -> tuple[Array, Any]:
    """Straight-through one-hot argmax (eq. 6): forward one_hot(argmax(logits)), backward the
    Jacobian of softmax(logits / tau).

    Inputs: logits : (..., K) float32 or float64, finite, K >= 2; tau : float > 0.
    Returns one_hot : (..., K) of the logits' dtype, entries exactly 0.0 and 1.0 with a single 1.0
    at the first maximum; and the cache for ``one_hot_argmax_backward``.
    """
    _check_logits(logits)
    tau = check_number("tau", tau)
    return _hard_one_hot(logits, tau), (B.value(logits), tau)


def one_hot_argmax_backward(cache: Any, dy: Array) -> Array:
    """dlogits = J^T dy with J the Jacobian of p = softmax(logits / tau):
    dlogits = p * (dy - sum(dy * p)) / tau.  dy, dlogits : (..., K)."""
    logits, tau = cache
    check_shape("dy", dy, tuple(logits.shape))
    _, softmax_cache = softmax_forward(logits / tau)
    return softmax_backward(softmax_cache, dy) / tau


defvjp(_hard_one_hot, lambda ans, logits, tau: lambda g: one_hot_argmax_backward((logits, tau), g))


def _masked_logit(dtype: Any) -> float:
    """The logit given to non-units: -sqrt(largest finite value of dtype), about -1.8e19 in float32
    and -1.3e154 in float64. Finite, it stays finite after division by any tau >= 1 / sqrt(max)
    and after subtracting any finite logit of a reasonable size, and its softmax weight underflows
    to exactly 0."""
    return -math.sqrt(float(B.xp().finfo(dtype).max))


def mask_scale_logits(logits: Array) -> Array:
    """Scale logits with every non-unit masked: theta'[j] = theta[j] where gcd(j, K) = 1, else
    -sqrt(finfo(dtype).max) (j = 0 included), so one_hot_argmax(theta') is always invertible.

    Inputs: logits : (..., K) float32 or float64, finite, K >= 2. Returns (..., K), same dtype.
    """
    _check_logits(logits)
    return _mask_non_units(logits)


def _mask_non_units(logits: Array) -> Array:
    """``mask_scale_logits`` without its checks."""
    return B.xp().where(unit_mask(logits.shape[-1]), logits, _masked_logit(B.value(logits).dtype))


def hard_one_hot(logits: Array, scale: bool = False) -> Array:
    """The forward value of ``one_hot_argmax(logits)`` (of ``mask_scale_logits(logits)`` when
    ``scale``), unchecked and without a cache: for inference loops, such as sampling position by
    position, whose caller checks its inputs once.  logits : (..., K) -> one-hot (..., K)."""
    v = B.value(logits)
    return _hard_one_hot(_mask_non_units(v) if scale else v, 1.0)


def mask_scale_logits_backward(K: int, dmasked: Array) -> Array:
    """dlogits[j] = dmasked[j] at units j, 0 at non-units.  dmasked, dlogits : (..., K)."""
    check_positive_int("K", K, minimum=2)
    if B.value(dmasked).ndim < 1 or dmasked.shape[-1] != K:
        raise ValueError(f"dmasked must have shape (..., {K}), got {tuple(dmasked.shape)}")
    return B.xp().where(unit_mask(K), dmasked, 0)
