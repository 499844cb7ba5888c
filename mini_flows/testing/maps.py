"""The invertibility and log-det checks on a pair of plain maps, for anything that is not a
``Bijection`` (a scalar transform, say); ``testing.bijections`` applies them to bijections.

Shape contract: ``forward(x) -> (y, logdet)`` with x : (*batch, *event), y of x's shape and
logdet : batch, the log |det dy/dx| of each sample. Elementwise maps have event = (): every entry
is its own sample and logdet has x's shape. ``inverse(y) -> (x, logdet_inv)`` likewise. The batch
axes are the leading ``logdet.ndim`` axes of x.

Modelled on TFP's ``assert_bijective_and_finite`` and distrax's per-bijector tests.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mini_flows import backend as B
from mini_flows.checks import check_number
from mini_flows.testing.compare import assert_close, safe_note
from mini_flows.testing.gradients import jacobian

Map = Callable[[Any], tuple[Any, Any]]
"""v -> (value, logdet), one direction of a bijection."""
RTOL, ATOL = 1e-9, 1e-12
"""Round-trip tolerance of a continuous map in float64: |a - b| <= ATOL + RTOL |b| entrywise."""
JACOBIAN_RTOL = 1e-8
"""Log-det against log|det J|: |logdet - log|det J|| <= JACOBIAN_RTOL (1 + |log|det J||)."""


def _batch_shape(x: np.ndarray, logdet: np.ndarray, what: str) -> tuple[int, ...]:
    """The batch shape, logdet's, after checking it leads x's shape."""
    if x.shape[: logdet.ndim] != logdet.shape:
        raise AssertionError(f"{what}: logdet shape {logdet.shape} is not a leading part of the input's shape "
                             f"{x.shape}")
    return logdet.shape


def _assert_finite(name: str, v: np.ndarray) -> None:
    if not np.isfinite(v).all():
        where = np.unravel_index(int(np.argmax(~np.isfinite(v))), v.shape)
        raise AssertionError(f"finite values: {name} is {float(v[where])!r} at index {tuple(int(i) for i in where)}")


def _assert_value(name: str, v: np.ndarray, x: np.ndarray, discrete: bool) -> None:
    """A value of the pair: finite, of x's shape and dtype, and one-hot where ``discrete``."""
    _assert_finite(name, v)
    if v.shape != x.shape or v.dtype != x.dtype:
        raise AssertionError(f"shapes and dtypes: {name} is {v.dtype} {v.shape}, x is {x.dtype} {x.shape}")
    if discrete:
        assert_one_hot(v, name)


def assert_one_hot(v: np.ndarray, what: str) -> None:
    """Assert every position of the host array v (..., K) is one-hot: entries 0.0 or 1.0, one 1.0."""
    if v.ndim == 0:
        raise AssertionError(f"one-hot values: {what} is a scalar, not one-hot vectors (..., K)")
    rows = v.reshape(-1, v.shape[-1])
    bad = ~(np.isin(rows, (0.0, 1.0)).all(axis=-1) & (rows.sum(axis=-1) == 1))
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), v.shape[:-1])
        raise AssertionError(f"one-hot values: {what} is not one-hot at position {tuple(int(i) for i in where)} "
                             f"({int(bad.sum())} of {len(rows)} positions)")


def assert_inverse_pair(forward: Map, inverse: Map, x: Any, *, y: Any = None, discrete: bool = False,
                        rtol: float = RTOL, atol: float = ATOL) -> tuple[np.ndarray, np.ndarray]:
    """Assert that ``forward`` and ``inverse`` undo each other at x (and at y), with finite values
    and matching log-dets; AssertionError naming the check that failed otherwise.

    Checks, with |a - b| <= atol + rtol |b| entrywise (bit for bit where ``discrete``):
      finite values: every value and logdet is finite;
      shapes and dtypes: values of x's shape and dtype, both directions' logdets of one shape,
      leading x's;
      round trips: inverse(forward(x)) == x and forward(inverse(y)) == y, with y = forward(x)
      where ``y`` is None;
      log-dets: logdet_forward(x) == -logdet_inverse(forward(x)) (and likewise at y); for a
      ``discrete`` map of one-hot vectors every logdet is exactly 0 and every value one-hot.

    x : (*batch, *event) array of the current backend (one-hot (..., K) where ``discrete``); y, if
    given, a point of the data space (an input of ``inverse``) of x's shape.
    Returns (forward(x), its logdet) as host NumPy arrays, for further checks.
    """
    check_number("rtol", rtol, positive=False)
    check_number("atol", atol, positive=False)
    if discrete:
        rtol = atol = 0.0
    xs = np.asarray(B.to_numpy(x))
    inputs = {"x": xs} if y is None else {"x": xs, "y": np.asarray(B.to_numpy(y))}
    for name, v in inputs.items():
        _assert_value(name, v, xs, discrete)

    def run(direction: Map, v: Any, value_name: str, logdet_name: str,
            batch: tuple[int, ...] | None) -> tuple[Any, np.ndarray, np.ndarray]:
        """direction(v), checked as soon as it is computed (so a bad value never reaches a map that
        refuses it): finite, of x's shape and dtype, one-hot where discrete, logdet : batch."""
        value, logdet = direction(v)
        host_value, host_logdet = np.asarray(B.to_numpy(value)), np.asarray(B.to_numpy(logdet))
        _assert_value(value_name, host_value, xs, discrete)
        _assert_finite(logdet_name, host_logdet)
        if batch is not None and host_logdet.shape != batch:
            raise AssertionError(f"shapes and dtypes: {logdet_name} has shape {host_logdet.shape}, the forward "
                                 f"logdet at x {batch}")
        return value, host_value, host_logdet

    y_x, ys, ld_x = run(forward, x, "forward(x)", "forward logdet at x", None)
    batch = _batch_shape(xs, ld_x, "shapes and dtypes")
    if xs.size:
        safe_note(f"x in [{xs.min():.3g}, {xs.max():.3g}], forward(x) in [{ys.min():.3g}, {ys.max():.3g}]")
    x_back, xb, ld_back = run(inverse, y_x, "inverse(forward(x))", "inverse logdet at forward(x)", batch)
    assert_close(xb, xs, rtol=rtol, atol=atol, check="round trip inverse(forward(x)) == x")
    if y is None:
        target, x_y, ld_y = ys, x_back, ld_back
    else:
        target = inputs["y"]
        x_y, _, ld_y = run(inverse, y, "inverse(y)", "inverse logdet at y", batch)
    _, yb, ld_y_back = run(forward, x_y, "forward(inverse(y))", "forward logdet at inverse(y)", batch)
    assert_close(yb, target, rtol=rtol, atol=atol, check="round trip forward(inverse(y)) == y")
    logdets = {"forward logdet at x": ld_x, "inverse logdet at forward(x)": ld_back, "inverse logdet at y": ld_y,
               "forward logdet at inverse(y)": ld_y_back}
    if discrete:
        for name, ld in logdets.items():
            assert_close(ld, np.zeros_like(ld), rtol=0.0, atol=0.0, check=f"log-det of a discrete map: {name} == 0")
        return ys, ld_x
    assert_close(-ld_back, ld_x, rtol=rtol, atol=atol,
                 check="log-det consistency: logdet_inverse(forward(x)) == -logdet_forward(x)")
    assert_close(-ld_y_back, ld_y, rtol=rtol, atol=atol,
                 check="log-det consistency: logdet_forward(inverse(y)) == -logdet_inverse(y)")
    return ys, ld_x


def assert_jacobian_logdet(forward: Map, x: Any, *, rtol: float = JACOBIAN_RTOL) -> np.ndarray:
    """Assert that forward's logdet equals log |det J| of autograd's exact Jacobian, sample by sample.

    ``forward`` must be traceable by autograd (it runs inside ``B.use_autograd()``, on the "numpy"
    backend only); keep x small, since the full Jacobian of the flattened map, (x.size, x.size), is
    built. Besides comparing ``numpy.linalg.slogdet`` of each sample's diagonal block with logdet
    (within rtol + rtol |log|det J||), it asserts the blocks between different samples vanish
    (samples are independent) and that each block is invertible.

    Returns J : (*batch, event_size, event_size) host array, each sample's Jacobian
    d y_flat / d x_flat (for further checks, e.g. that a prior's Jacobian is block-triangular).
    """
    check_number("rtol", rtol, positive=False)
    xs = np.asarray(B.to_numpy(x))
    ld = np.asarray(B.to_numpy(forward(x)[1]))
    batch = _batch_shape(xs, ld, "log-det against autograd's Jacobian")
    n = int(np.prod(batch, dtype=int))
    e = xs.size // n if n else 0
    full = np.asarray(jacobian(lambda flat: forward(flat.reshape(xs.shape))[0].reshape(-1), xs.reshape(-1)))
    full = full.reshape(n, e, n, e)
    blocks = full[np.arange(n), :, np.arange(n), :]
    off = full.copy()
    off[np.arange(n), :, np.arange(n), :] = 0.0
    scale = max(float(np.max(np.abs(blocks))) if blocks.size else 0.0, 1.0)
    if off.size and float(np.max(np.abs(off))) > 1e-12 * scale:
        i, _, j, _ = np.unravel_index(int(np.argmax(np.abs(off))), off.shape)
        raise AssertionError(f"independent samples: the output of sample {int(i)} depends on the input of sample "
                             f"{int(j)} (|d y_i / d x_j| up to {float(np.max(np.abs(off))):.3e})")
    sign, logabsdet = np.linalg.slogdet(blocks)
    if np.any(sign == 0):
        raise AssertionError(f"log-det against autograd's Jacobian: singular Jacobian at sample "
                             f"{int(np.argmin(np.abs(sign)))}")
    safe_note(f"logdet {ld.reshape(n)}, slogdet {logabsdet}")
    assert_close(ld.reshape(n), logabsdet, rtol=rtol, atol=rtol,
                 check="log-det against autograd's Jacobian: logdet == log|det J|")
    return blocks.reshape(*batch, e, e)
