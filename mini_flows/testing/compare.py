"""Comparisons that fail with a message saying which check failed, by how much and where.

``assert_close`` compares two arrays entry by entry (|actual - desired| <= atol + rtol |desired|;
bit for bit with rtol = atol = 0); ``assert_grads_close`` compares two gradient trees leaf by
leaf with a tolerance relative to the gradient's scale. Both copy their inputs to the host, so
they take arrays of any backend (and autograd boxes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import note
from hypothesis.errors import InvalidArgument

from mini_flows import backend as B


def safe_note(message: str) -> None:
    """hypothesis.note inside a @given test; nothing outside one (the assertion message suffices)."""
    try:
        note(message)
    except InvalidArgument:
        pass


def _where(index: tuple[int, ...]) -> str:
    return f"index {tuple(int(i) for i in index)}" if index else "the single entry"


def _show(value: Any) -> str:
    """One entry as Python prints a float: the shortest repr that reads back bit for bit."""
    return repr(float(value))


def assert_close(actual: Any, desired: Any, *, rtol: float, atol: float, check: str) -> None:
    """Assert |actual - desired| <= atol + rtol |desired| entrywise (NaN fails), shapes equal.

    With rtol = atol = 0 the arrays must be equal bit for bit. The AssertionError starts with
    ``check`` and gives the largest absolute error, where it is (the index and both values), the
    largest relative error and how many entries fail.
    """
    a, d = np.asarray(B.to_numpy(actual)), np.asarray(B.to_numpy(desired))
    if a.shape != d.shape:
        raise AssertionError(f"{check}: shape {a.shape}, expected {d.shape}")
    if a.size == 0:
        return
    err = np.abs(a.astype(np.float64) - d.astype(np.float64))
    bad = ~(err <= atol + rtol * np.abs(d))
    if not bad.any():
        return
    worst = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = float(np.nanmax(np.where(bad, err / np.abs(d), 0.0)))
    bound = "bit for bit" if rtol == atol == 0 else f"beyond atol {atol:g} + rtol {rtol:g} |expected|"
    raise AssertionError(
        f"{check}: max abs error {float(err[worst]):.3e} at {_where(worst)} (got {_show(a[worst])}, expected "
        f"{_show(d[worst])}), max rel error {rel:.3e}; {int(bad.sum())} of {a.size} entries differ {bound}"
    )


def _leaves(tree: Any) -> dict[str, Any]:
    """Named leaves of a gradient tree: nested dicts ("a/b"), tuples or lists ("0/a"), or an array ("")."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update({f"{key}/{k}" if k else key: v for k, v in _leaves(value).items()})
        return out
    if isinstance(tree, (tuple, list)):
        out = {}
        for i, t in enumerate(tree):
            out.update({f"{i}/{k}" if k else str(i): v for k, v in _leaves(t).items()})
        return out
    return {"": tree}


def assert_grads_close(hand: Any, auto: Any, rtol: float = 1e-8, floor: float = 1e-6, *,
                       check: str = "gradient") -> None:
    """max |hand - auto| <= rtol * max(max |auto|, floor), leaf by leaf (trees, tuples or arrays).

    The floor makes differences below rtol * floor (1e-14 by default) pass as round-off where a
    gradient is nearly zero (GELU far in its negative tail, say): there both sides cancel. The
    AssertionError starts with ``check`` and names the leaf, the error, where it is and the scale.
    """
    h, a = _leaves(hand), _leaves(auto)
    if h.keys() != a.keys():
        raise AssertionError(f"{check}: gradient trees differ: {sorted(h)} vs {sorted(a)}")
    for name in a:
        hv, av = np.asarray(B.to_numpy(h[name])), np.asarray(B.to_numpy(a[name]))
        leaf = f"{check}, {name or 'the gradient'}"
        if hv.shape != av.shape:
            raise AssertionError(f"{leaf}: shape {hv.shape}, autograd's {av.shape}")
        if not av.size:
            continue
        scale = max(float(np.max(np.abs(av))), floor)
        err = np.abs(hv - av)
        worst = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        safe_note(f"{leaf}: max abs error {float(err[worst]):.3e}, gradient scale {scale:.3e}")
        if not float(err[worst]) <= rtol * scale:
            raise AssertionError(
                f"{leaf}: max abs error {float(err[worst]):.3e} at {_where(worst)} (hand-written {_show(hv[worst])}, "
                f"autograd {_show(av[worst])}) > {rtol:g} x gradient scale {scale:.3e}"
            )


def tree_floor(auto: Any, floor: float = 1e-6) -> float:
    """A floor for ``assert_grads_close`` at the largest gradient anywhere in ``auto``: round-off
    scales with the model's largest gradients, not with each leaf's own, so a leaf whose true
    gradient is (nearly) zero carries round-off from gradients of order 1 or more upstream (a
    key bias, to which softmax attention is invariant; a flow behind a saturated straight-through
    factor)."""
    values = [np.asarray(B.to_numpy(a)) for a in _leaves(auto).values()]
    return max([floor] + [float(np.max(np.abs(v))) for v in values if v.size])

