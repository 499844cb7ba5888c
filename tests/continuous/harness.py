"""The checks of the shared harness for continuous maps: tests/test_bijections.py applies them to
every registered flow (tests/bijections.py), tests/continuous/test_scalar.py to the scalar transforms.

Modelled on TFP's ``assert_bijective_and_finite`` and distrax's per-bijector tests.

Shape contract: ``forward(x) -> (y, logdet)`` with x : (batch, *event), y of x's shape and
logdet : (batch,) -- the log |det dy/dx| of each sample. Elementwise maps have event = (): every
entry is its own sample and logdet has x's shape. ``inverse(y) -> (x, logdet_inv)`` likewise.
The batch axes are the leading ``logdet.ndim`` axes of x.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import numpy as np
from mini_flows import backend as B
from tests.gradcheck import safe_note as _note

Map = Callable[[Any], tuple[Any, Any]]


def _split(x: np.ndarray, logdet: np.ndarray, what: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(batch shape, event shape) of x, checked against logdet's shape."""
    batch = logdet.shape
    assert x.shape[: len(batch)] == batch, f"{what}: logdet shape {batch} is not a leading part of x's shape {x.shape}"
    return batch, x.shape[len(batch):]


def check_bijection(
    forward: Map, inverse: Map, x: Any, rtol: float = 1e-9, atol: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """Assert that ``forward`` and ``inverse`` are inverse bijections at x, finite, with matching log-dets.

    Checks, with |a - b| <= atol + rtol |b| entrywise:
      inverse(forward(x)) == x and forward(inverse(y)) == y for y = forward(x) (round trips both ways);
      every output finite and of x's dtype and shape;
      logdet_forward(x) == -logdet_inverse(forward(x)).

    Parameters
    ----------
    forward, inverse : callables returning (value, logdet) as described in the module docstring.
    x : (batch, *event) array of the current backend.

    Returns
    -------
    (y, logdet) as host NumPy arrays, for further checks.
    """
    y, logdet = forward(x)
    x_back, logdet_inv = inverse(y)
    y_again, _ = forward(x_back)
    xs, ys, xb, yb = (B.to_numpy(a) for a in (x, y, x_back, y_again))
    ld, ld_inv = B.to_numpy(logdet), B.to_numpy(logdet_inv)
    _note(f"x range [{xs.min():.3g}, {xs.max():.3g}], y range [{ys.min():.3g}, {ys.max():.3g}]")
    for name, a in (("y", ys), ("x_back", xb), ("y_again", yb), ("logdet", ld), ("logdet_inv", ld_inv)):
        assert np.all(np.isfinite(a)), f"{name} is not finite"
    for name, a in (("y", ys), ("x_back", xb)):
        assert a.shape == xs.shape, f"{name} has shape {a.shape}, expected x's shape {xs.shape}"
        assert a.dtype == xs.dtype, f"{name} is {a.dtype}, expected x's dtype {xs.dtype}"
    _split(xs, ld, "forward")
    assert ld_inv.shape == ld.shape, f"inverse logdet shape {ld_inv.shape} != forward logdet shape {ld.shape}"
    np.testing.assert_allclose(xb, xs, rtol=rtol, atol=atol, err_msg="inverse(forward(x)) != x")
    np.testing.assert_allclose(yb, ys, rtol=rtol, atol=atol, err_msg="forward(inverse(y)) != y")
    np.testing.assert_allclose(-ld_inv, ld, rtol=rtol, atol=atol, err_msg="logdet(x) != -logdet_inv(forward(x))")
    return ys, ld


def check_logdet_against_jacobian(forward: Map, x: Any, rtol: float = 1e-8) -> np.ndarray:
    """Assert that forward's logdet equals log |det J| of autograd's exact Jacobian, sample by sample.

    ``forward`` must be traceable by autograd (it runs inside ``B.use_autograd()``); keep x small,
    since the full Jacobian of the flattened map, (x.size, x.size), is built. Besides comparing
    ``numpy.linalg.slogdet`` of each sample's diagonal block with logdet (within
    rtol + rtol |logdet|), it asserts the blocks between different samples vanish (samples are
    independent) and that each block is invertible.

    Returns
    -------
    J : (*batch, event_size, event_size) host array, each sample's Jacobian d y_flat / d x_flat
        (for further checks, e.g. that a prior's Jacobian is block-triangular).
    """
    xs = np.asarray(B.to_numpy(x))
    _, logdet = forward(x)
    ld = B.to_numpy(logdet)
    batch, event = _split(xs, ld, "forward")
    n, e = int(np.prod(batch, dtype=int)), int(np.prod(event, dtype=int))

    def flat_map(flat: Any) -> Any:
        return forward(flat.reshape(xs.shape))[0].reshape(-1)

    with B.use_autograd():
        full = np.asarray(autograd.jacobian(flat_map)(xs.reshape(-1)))
    full = full.reshape(n, e, n, e)
    blocks = full[np.arange(n), :, np.arange(n), :]
    off = full.copy()
    off[np.arange(n), :, np.arange(n), :] = 0.0
    scale = max(float(np.max(np.abs(blocks))), 1.0)
    assert float(np.max(np.abs(off))) <= 1e-12 * scale, "output of one sample depends on the input of another"
    sign, logabsdet = np.linalg.slogdet(blocks)
    assert np.all(sign != 0), "singular Jacobian"
    want = ld.reshape(n)
    _note(f"logdet {want}, slogdet {logabsdet}")
    np.testing.assert_allclose(want, logabsdet, rtol=rtol, atol=rtol, err_msg="logdet != log|det J| (autograd)")
    return blocks.reshape(*batch, e, e)
