"""The checks of a ``Bijection`` (mini_flows.bijection): round trips, finite values, log-det
against autograd's Jacobian, and each differentiable direction's backward pass against autograd.

    assert_bijection(flow, params, x, context)     all of them; AssertionError naming the failed one

or one at a time: ``assert_round_trips`` (any backend), ``assert_logdet_matches_jacobian`` and
``assert_vjp_matches_autograd`` (autograd, so the "numpy" backend only). Shapes follow the
protocol: x, y : (*lead, *event) with ``bijection.event_ndim`` event axes, logdet : lead.

The default tolerances are for float64 and a well-conditioned flow; a float32 flow needs about
rtol=1e-4, atol=1e-6, jacobian_rtol=1e-4 and grad_rtol=1e-4. A discrete flow (``discrete=True``,
one-hot inputs) is held to bit-exact round trips and a zero log-det instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.bijection import DIRECTIONS, Bijection
from mini_flows.checks import check_number
from mini_flows.nn.tree import Tree
from mini_flows.testing.compare import assert_grads_close, tree_floor
from mini_flows.testing.gradients import autograd_grads, vjp_loss
from mini_flows.testing.maps import ATOL, JACOBIAN_RTOL, RTOL, Map, assert_inverse_pair, assert_jacobian_logdet

GRAD_RTOL, GRAD_FLOOR = 1e-8, 1e-6
"""Backward pass against autograd, leaf by leaf: max |hand - auto| <= GRAD_RTOL max(max |auto|, GRAD_FLOOR)."""


def _map(bijection: Bijection, params: Tree, context: Any, direction: str) -> Map:
    run = getattr(bijection, direction)
    return lambda v: run(params, v, context)[:2]


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'inverse', got {direction!r}")


def _need_numpy(what: str) -> None:
    """BackendUnavailableError before any work where ``what`` would run autograd off NumPy."""
    if B.get_backend() != "numpy":
        raise B.BackendUnavailableError(f"{what} compares with autograd, which differentiates NumPy arrays only: run "
                                        f"it on the 'numpy' backend (assert_round_trips runs on any backend)")


def assert_round_trips(bijection: Bijection, params: Tree, x: Array, context: Any = None, *, y: Array | None = None,
                       discrete: bool = False, rtol: float = RTOL, atol: float = ATOL) -> None:
    """inverse(forward(x)) == x and forward(inverse(y)) == y (y = forward(x) where None), finite
    values of x's shape and dtype, logdet : lead in both directions with logdet_inverse(forward(x))
    == -logdet_forward(x); for a ``discrete`` flow, one-hot values, bit-exact round trips and a
    zero logdet. Within |a - b| <= atol + rtol |b| entrywise otherwise. Runs on any backend.

    x : (*lead, *event), a point of the base space (one-hot (..., K) where ``discrete``); y : a
    point of the data space of x's shape; context : the bijection's context, or None.
    """
    lead = tuple(x.shape[: x.ndim - bijection.event_ndim])
    _, logdet = assert_inverse_pair(_map(bijection, params, context, "forward"),
                                    _map(bijection, params, context, "inverse"), x, y=y, discrete=discrete,
                                    rtol=rtol, atol=atol)
    if logdet.shape != lead:
        raise AssertionError(f"shapes and dtypes: logdet has shape {logdet.shape}, expected the lead shape {lead} "
                             f"(x {tuple(x.shape)} with event_ndim {bijection.event_ndim})")


def assert_logdet_matches_jacobian(bijection: Bijection, params: Tree, v: Array, context: Any = None, *,
                                   direction: str = "inverse", rtol: float = JACOBIAN_RTOL) -> np.ndarray:
    """``direction``'s logdet at its input v equals log|det J| of autograd's Jacobian of that
    direction's map, sample by sample, and samples do not depend on each other (see
    ``maps.assert_jacobian_logdet``). Needs the "numpy" backend; keep v small (the full
    (v.size, v.size) Jacobian is built).

    v : (*lead, *event), an input of ``direction`` (a data point for "inverse").
    Returns J : (*lead, event_size, event_size), each sample's Jacobian, for structural checks.
    """
    _check_direction(direction)
    _need_numpy("assert_logdet_matches_jacobian")
    return assert_jacobian_logdet(_map(bijection, params, context, direction), v, rtol=rtol)


def assert_vjp_matches_autograd(bijection: Bijection, params: Tree, v: Array, context: Any = None, *,
                                direction: str, discrete: bool = False, rtol: float = GRAD_RTOL,
                                seed: int = 0) -> None:
    """``bijection.vjp(direction)`` at input v against autograd's gradient of sum(value * dvalue) +
    sum(logdet * dlogdet) through ``direction``'s own map, for cotangents drawn N(0, 1) from
    ``B.host_rng(seed)``: the gradients of the parameters, of v, and of the context where it is a
    float array (the hand-written dcontext must be None otherwise). Needs the "numpy" backend.

    Leaf by leaf, max |hand - auto| <= rtol max(max |auto|, floor) with floor = 1e-6, or, for a
    ``discrete`` flow, the largest parameter gradient: a discrete chain's round-off scales with its
    largest gradient, not each leaf's own (a leaf behind a saturated straight-through factor can
    be ~1e-7 and carry 1e-14 from gradients of 1).

    v : (*lead, *event), an input of ``direction``; context : the bijection's context, or None.
    """
    _check_direction(direction)
    check_number("rtol", rtol, positive=False)
    _need_numpy("assert_vjp_matches_autograd")
    run, backward = getattr(bijection, direction), bijection.vjp(direction)
    value, logdet, cache = run(params, v, context)
    rng = B.host_rng(seed)
    dvalue = rng.standard_normal(value.shape).astype(B.value(value).dtype)
    dlogdet = rng.standard_normal(logdet.shape).astype(B.value(logdet).dtype)
    grads, dv, dcontext = backward(params, cache, B.asarray(dvalue), B.asarray(dlogdet))
    check = f"VJP of {direction} against autograd"

    def loss(p: Tree, v: Array, c: Any = context) -> Any:
        value, logdet, _ = run(p, v, c)
        return vjp_loss(value, dvalue) + vjp_loss(logdet, dlogdet)

    if context is not None and hasattr(context, "dtype") and B.is_floating(context):
        auto = autograd_grads(loss, params, v, context)
        hand: tuple[Any, ...] = (grads, dv, dcontext)
        names = ("params", "input", "context")
    else:
        if dcontext is not None:
            raise AssertionError(f"{check}: dcontext must be None for a context that is None or not a float array")
        auto, hand, names = autograd_grads(loss, params, v), (grads, dv), ("params", "input")
    floor = tree_floor(auto[0], GRAD_FLOOR) if discrete else GRAD_FLOOR
    assert_grads_close(dict(zip(names, hand)), dict(zip(names, auto)), rtol=rtol, floor=floor, check=check)


def assert_bijection(bijection: Bijection, params: Tree, x: Array, context: Any = None, *, y: Array | None = None,
                     discrete: bool = False, rtol: float = RTOL, atol: float = ATOL,
                     jacobian_rtol: float = JACOBIAN_RTOL, grad_rtol: float = GRAD_RTOL, seed: int = 0) -> None:
    """Every check of a bijection at x (and y), raising AssertionError that names the failed check,
    the largest error and where it is:

      round trips both ways, finite values, shapes and log-det consistency
        (``assert_round_trips``: to atol + rtol |b|, or bit for bit where ``discrete``);
      the inverse logdet at y against log|det J| of autograd's Jacobian, continuous flows only
        (``assert_logdet_matches_jacobian``, within jacobian_rtol; the round trip already ties the
        forward logdet to it);
      each direction in ``bijection.differentiable``: its backward pass against autograd's VJP,
        forward at x and inverse at y (``assert_vjp_matches_autograd``, within grad_rtol, cotangents
        from ``B.host_rng(seed)``).

    x : (*lead, *event), a base point (one-hot (..., K) for a ``discrete`` flow); y : a data point
    of x's shape, forward(x) where None; context : the bijection's context, or None. The autograd
    checks need the "numpy" backend (BackendUnavailableError on another; ``assert_round_trips``
    runs anywhere). Defaults are float64 tolerances (see the module docstring for float32).
    """
    _need_numpy("assert_bijection")
    assert_round_trips(bijection, params, x, context, y=y, discrete=discrete, rtol=rtol, atol=atol)
    if y is None:
        y = bijection.forward(params, x, context)[0]
    if not discrete:
        assert_logdet_matches_jacobian(bijection, params, y, context, direction="inverse", rtol=jacobian_rtol)
    for direction in bijection.differentiable:
        assert_vjp_matches_autograd(bijection, params, x if direction == "forward" else y, context,
                                    direction=direction, discrete=discrete, rtol=grad_rtol, seed=seed)
