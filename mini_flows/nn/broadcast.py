"""Gradients of broadcasting: the backward pass of ``a + b`` where ``a`` was broadcast."""

from __future__ import annotations

from mini_flows.backend import Array


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a gradient of the broadcast shape back to ``shape``, the shape of the argument it
    belongs to: over the leading axes broadcasting added and over the axes where ``shape`` is 1."""
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g
