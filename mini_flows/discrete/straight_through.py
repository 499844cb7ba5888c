"""Straight-through one-hot argmax and the scale mask (Tran et al. 2019, section 3.3).

The flow's network gives K logits theta per position for the location (and the scale). The
forward pass uses their exact one-hot argmax (eq. 6),

    mu = one_hot(argmax(theta)),

and the backward pass replaces its (zero) Jacobian with that of the softmax at temperature tau,

    d mu / d theta  ~  d softmax(theta / tau) / d theta,    tau = 0.1 by default.

Scale logits are masked first: every value not coprime with K (0 included) gets a large negative
finite logit, so the argmax is always a unit and sigma is invertible modulo K.

Location logits may be shrunk first (``shrink_logits``, not in the paper; the flows' default):

    theta' = c b / sqrt(b^2 + mean_k c_k^2),   c = theta - mean_k theta_k,   b = spread sqrt(K),

a positive multiple of the centred logits, so argmax(theta') = argmax(theta) and the forward pass
is the paper's; only the surrogate changes. Trained with Adam, which moves every weight by about
the learning rate whatever its gradient, a flow's location logits drift apart until the softmax
weight of the runner-up, about exp(-margin / tau), and with it the gradient, vanishes: the flow
freezes. Shrunk, the logits the softmax sees keep a root-mean-square spread below b, so the
gradient cannot collapse however far the raw logits drift; where their spread is small next to b
they pass almost unchanged. The bound grows as sqrt(K) because the largest margin a spread b
allows, b K / sqrt(K - 1), does too, and measured, a large K wants the larger bound (the
README's fullrank and mog2d sections have the figures).

The bound narrows over training (``scheduled_spread``, the flows' default when the loss is told
the fraction of training done, ``flows.with_progress``): WIDE = 1000 times ``spread`` at the start,
which in effect is the plain estimator, narrowing geometrically to ``spread`` by half-way, and
``spread`` after. Measured (docs/architecture.md has the numbers): what the first steps see
decides a randomly started flow. On addition the plain surrogate lets the reversed AR flow find
the carries (0.006 nats) where the bound from the start leaves it at its base (5.78 nats), and
widening the bound later does not recover it; on fullrank the bounded second half keeps part
of the bound's gain for flows started at the identity (bipartite flow - factorized base on
D = 5, K = 5, population, seeds 0 to 2: -0.026 to -0.015 nats, against -0.031 to -0.025 with
the bound throughout; the training-set gain plain at seed 0: -0.007).
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


WIDE = 1000.0
"""The start of ``scheduled_spread``: that many times the bound, wider than any spread logits reach."""
NARROWED = 0.5
"""The fraction of training by which ``scheduled_spread`` has narrowed to the bound."""


def scheduled_spread(spread: float, progress: float | None) -> float:
    """The spread bound ``shrink_logits`` uses at ``progress``, the fraction of training done:
    spread * WIDE ** max(0, 1 - progress / NARROWED), from 1000 spread (the plain estimator in
    effect) at 0 geometrically down to ``spread`` at NARROWED = 0.5 and after; ``spread`` itself
    when progress is None (a loss not told the progress, and evaluation).

    Inputs: spread : float > 0; progress : float in [0, 1] or None.
    """
    spread = check_number("spread", spread)
    if progress is None:
        return spread
    if check_number("progress", progress, positive=False) > 1:
        raise ValueError(f"progress must be the fraction of training done, in [0, 1], got {progress!r}")
    return spread * WIDE ** max(0.0, 1.0 - progress / NARROWED)


def shrink_logits(logits: Array, spread: float) -> tuple[Array, Any]:
    """theta' = c b / sqrt(b^2 + mean(c^2)), c = theta - mean(theta), b = spread sqrt(K), along the
    last axis: the location logits as the straight-through softmax sees them, their root-mean-
    square spread below b and their argmax (first on ties) that of ``logits`` up to round-off ties.

    Inputs: logits : (..., K) float; spread : float > 0. Returns theta' : (..., K), same dtype, and
    the cache for ``shrink_logits_backward``.
    """
    bound = check_number("spread", spread) * math.sqrt(logits.shape[-1])
    c = logits - logits.mean(axis=-1, keepdims=True)
    r = bound / B.xp().sqrt(bound * bound + (c * c).mean(axis=-1, keepdims=True))
    return c * r, (B.value(c), B.value(r), bound)


def shrink_logits_backward(cache: Any, dshrunk: Array) -> Array:
    """dtheta = P(r dtheta' - (r^3 / b^2) mean(dtheta' c) c), with r = b / sqrt(b^2 + mean(c^2))
    and P the centring map v -> v - mean(v).  dshrunk, dtheta : (..., K)."""
    c, r, bound = cache
    check_shape("dshrunk", dshrunk, tuple(c.shape))
    dc = r * dshrunk - (r**3 / bound**2) * (dshrunk * c).mean(axis=-1, keepdims=True) * c
    return dc - dc.mean(axis=-1, keepdims=True)


def mask_scale_logits_backward(K: int, dmasked: Array) -> Array:
    """dlogits[j] = dmasked[j] at units j, 0 at non-units.  dmasked, dlogits : (..., K)."""
    check_positive_int("K", K, minimum=2)
    if B.value(dmasked).ndim < 1 or dmasked.shape[-1] != K:
        raise ValueError(f"dmasked must have shape (..., {K}), got {tuple(dmasked.shape)}")
    return B.xp().where(unit_mask(K), dmasked, 0)
