"""Autograd as the oracle for hand-written backward passes.

``autograd_grads(loss, *args)`` runs ``loss`` (which calls the same forward code the library
uses) on autograd.numpy and returns d loss / d arg for every arg; ``assert_grads_close``
compares two gradient trees with a tolerance relative to the gradient's scale.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import numpy as np
from hypothesis import note
from hypothesis.errors import InvalidArgument

from mini_flows import backend as B
from mini_flows.nn.tree import flatten


def autograd_grads(loss: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """Gradients of the scalar ``loss(*args)`` with respect to every argument, by autograd."""
    with B.use_autograd():
        return tuple(autograd.grad(loss, argnum=tuple(range(len(args))))(*args))


def vjp_loss(y: Any, dy: np.ndarray) -> Any:
    """The scalar sum(y * dy), whose gradient is the vector-Jacobian product dy^T J."""
    return (y * dy).sum()


def safe_note(message: str) -> None:
    """hypothesis.note inside a @given test; nothing outside one (the assertion message suffices)."""
    try:
        note(message)
    except InvalidArgument:
        pass


def _leaves(tree: Any) -> dict[str, Any]:
    if isinstance(tree, dict):
        return flatten(tree)
    if isinstance(tree, (tuple, list)):
        out: dict[str, Any] = {}
        for i, t in enumerate(tree):
            out.update({f"{i}/{k}": v for k, v in _leaves(t).items()})
        return out
    return {"": tree}


def assert_grads_close(hand: Any, auto: Any, rtol: float = 1e-8, floor: float = 1e-6) -> None:
    """max |hand - auto| <= rtol * max(max |auto|, floor), leaf by leaf (trees, tuples or arrays).

    The floor makes differences below rtol * floor (1e-14 by default) pass as round-off where a
    gradient is nearly zero (GELU far in its negative tail, say): there both sides cancel.
    """
    h, a = _leaves(hand), _leaves(auto)
    assert h.keys() == a.keys(), f"gradient trees differ: {sorted(h)} vs {sorted(a)}"
    for name in a:
        hv, av = B.to_numpy(h[name]), np.asarray(B.to_numpy(a[name]))
        assert hv.shape == av.shape, f"{name}: shape {hv.shape} vs autograd {av.shape}"
        scale = max(float(np.max(np.abs(av))) if av.size else 0.0, floor)
        err = float(np.max(np.abs(hv - av))) if av.size else 0.0
        safe_note(f"{name}: max abs error {err:.3e}, gradient scale {scale:.3e}")
        assert err <= rtol * scale, f"{name}: max abs error {err:.3e} > {rtol:g} x scale {scale:.3e}"


def tree_floor(auto: Any, floor: float = 1e-6) -> float:
    """A floor for ``assert_grads_close`` at the largest gradient anywhere in ``auto``: round-off
    scales with the model's largest gradients, not with each leaf's own, so a leaf whose true
    gradient is (nearly) zero carries round-off from gradients of order 1 or more upstream (a
    key bias, to which softmax attention is invariant; a flow behind a saturated straight-through
    factor)."""
    values = [np.asarray(B.to_numpy(a)) for a in _leaves(auto).values()]
    return max([floor] + [float(np.max(np.abs(v))) for v in values if v.size])
