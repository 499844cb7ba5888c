"""Autograd as the oracle for hand-written backward passes.

``autograd_grads(loss, *args)`` runs ``loss`` (which calls the same forward code the library
uses) on ``autograd.numpy`` inside ``B.use_autograd()`` and returns d loss / d arg for every arg;
``vjp_loss(y, dy)`` is the scalar whose gradient is the vector-Jacobian product dy^T J. Autograd
traces NumPy arrays only, so both need the "numpy" backend (``BackendUnavailableError`` on
another). Compare the results with ``compare.assert_grads_close``.

Example: ``autograd_grads(lambda p, x: vjp_loss(block.forward(p, x)[0], dy), params, x)`` is
(d params, d x), to hold against ``block.backward(params, cache, dy)``.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd

from mini_flows import backend as B


def autograd_grads(loss: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """Gradients of the scalar ``loss(*args)`` with respect to every argument, by autograd."""
    with B.use_autograd():
        return tuple(autograd.grad(loss, argnum=tuple(range(len(args))))(*args))


def vjp_loss(y: Any, dy: Any) -> Any:
    """The scalar sum(y * dy), whose gradient is the vector-Jacobian product dy^T J."""
    return (y * dy).sum()


def jacobian(fn: Callable[[Any], Any], x: Any) -> Any:
    """autograd's Jacobian of ``fn`` at the host array ``x``: (*fn(x).shape, *x.shape)."""
    with B.use_autograd():
        return autograd.jacobian(fn)(x)
