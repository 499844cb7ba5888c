"""Softmax, log-softmax and cross-entropy with integer targets, with hand-written backward passes."""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_shape, check_tokens


def one_hot(tokens: Array, num_classes: int, dtype: Any = "float64") -> Array:
    """tokens : (...) integers -> (..., num_classes) one-hot array of ``dtype``."""
    xp = B.xp()
    return (tokens[..., None] == xp.arange(num_classes)).astype(dtype)


def log_softmax(x: Array, axis: int = -1) -> Array:
    """log softmax(x) = x - logsumexp(x), shifted by the max so it never overflows."""
    xp = B.xp()
    shifted = x - xp.max(B.value(x), axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax_forward(x: Array, axis: int = -1) -> tuple[Array, Any]:
    """p = exp(x) / sum(exp(x)) along ``axis``."""
    p = B.xp().exp(log_softmax(x, axis))
    return p, (p, axis)


def softmax_backward(cache: Any, dp: Array) -> Array:
    """dx = p * (dp - sum(dp * p))."""
    p, axis = cache
    return p * (dp - (dp * p).sum(axis=axis, keepdims=True))


def log_softmax_forward(x: Array, axis: int = -1) -> tuple[Array, Any]:
    """log p = x - logsumexp(x) along ``axis``."""
    logp = log_softmax(x, axis)
    return logp, (logp, axis)


def log_softmax_backward(cache: Any, dlogp: Array) -> Array:
    """dx = dlogp - p * sum(dlogp)."""
    logp, axis = cache
    return dlogp - B.xp().exp(logp) * dlogp.sum(axis=axis, keepdims=True)


def cross_entropy_forward(logits: Array, targets: Array) -> tuple[Array, Any]:
    """Per-position negative log-likelihood -log softmax(logits)[target], in nats.

    Inputs: logits : (..., K) floats; targets : (...) integers in [0, K).
    Returns nll : (...). Reduce (mean, masked sum) in the caller.
    """
    check_float("logits", logits)
    check_shape("targets", targets, tuple(logits.shape[:-1]))
    check_tokens("targets", targets, logits.shape[-1])
    logp = log_softmax(logits)
    target = one_hot(targets, logits.shape[-1], B.value(logits).dtype)
    return -(logp * target).sum(axis=-1), (logp, target)


def cross_entropy_backward(cache: Any, dnll: Array) -> Array:
    """dlogits = dnll * (softmax(logits) - one_hot(target))."""
    logp, target = cache
    return dnll[..., None] * (B.xp().exp(logp) - target)


def softplus(x: Array) -> Array:
    """log(1 + exp(x)), written as max(x, 0) + log(1 + exp(-|x|)) so it never overflows."""
    return _softplus_with(x, B.xp().exp(-B.xp().abs(x)))


def _softplus_with(x: Array, e: Array) -> Array:
    """softplus(x) from e = exp(-|x|)."""
    return B.xp().maximum(x, 0) + B.xp().log1p(e)


def bernoulli_nll_forward(logits: Array, targets: Array) -> tuple[Array, Any]:
    """Negative log-likelihood of independent Bernoulli keys, summed over the last axis, in nats:
    -sum_k [x_k l_k - softplus(l_k)] (log sigmoid(l) for an on key, log sigmoid(-l) for an off one).

    Inputs: logits : (..., K) floats; targets : (..., K) of 0 and 1 (any numeric dtype).
    Returns nll : (...). Reduce (mean, masked sum) in the caller.
    """
    check_float("logits", logits)
    check_shape("targets", targets, tuple(logits.shape))
    targets = targets.astype(B.value(logits).dtype)  # an integer array would promote float32 to float64
    xp = B.xp()
    e = xp.exp(-xp.abs(logits))  # one exp serves softplus and, for the backward pass, sigmoid
    sigma = xp.where(logits >= 0, 1, e) / (1 + e)  # sigmoid(l) = 1 / (1 + e) for l >= 0, e / (1 + e) below
    return (_softplus_with(logits, e) - targets * logits).sum(axis=-1), (sigma, targets)


def bernoulli_nll_backward(cache: Any, dnll: Array) -> Array:
    """dlogits = dnll * (sigmoid(logits) - x)."""
    sigma, targets = cache
    return dnll[..., None] * (sigma - targets)
