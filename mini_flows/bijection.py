"""The one protocol every flow in mini_flows follows, and ``Inverse``, which swaps its directions.

Directions: ``forward`` maps base -> data (sampling), ``inverse`` maps data -> base (density).
Both return ``(value, logdet, cache)``; a backward pass is named after the direction it
differentiates (``forward_vjp``, ``inverse_vjp``). Continuous layers, their chains, the sequence
priors and the discrete flows all implement it, so one ``Chain`` composes any of them and one
property-testing kit (``mini_flows.testing.assert_bijection``) checks every one, a user's too.

References: the ``Bijector`` classes of distrax and TensorFlow Probability, whose "subclass
requirements" and shape contract this copies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

from mini_flows.backend import Array
from mini_flows.nn.tree import Tree

DIRECTIONS = ("forward", "inverse")
Result = tuple[Array, Array, Any]
"""(value, logdet, cache) of one direction."""
VJP = tuple[Tree, Array, Any]
"""(grads mirroring params, gradient of the direction's input, gradient of the context or None)."""


def opposite(direction: str) -> str:
    """"forward" <-> "inverse"."""
    return DIRECTIONS[1 - DIRECTIONS.index(direction)]


class Bijection(ABC):
    """A bijection x <-> y between base x and data y, with explicit parameters and an optional context.

        forward(params, x, context) -> (y, logdet, cache),  logdet = log|det dy/dx|   base -> data
        inverse(params, y, context) -> (x, logdet, cache),  logdet = log|det dx/dy|   data -> base

    so log p(y) = log p_base(x) + logdet of ``inverse``. A discrete flow returns logdet = 0: a
    bijection of a finite set moves probability mass without changing it.

    Shape contract: x, y : (*lead, *event) with ``event_ndim`` event axes (1 for a vector layer,
    (D, K) for a discrete flow, (T, H) for a sequence prior); logdet : lead; the context (a
    conditioning array (*lead, C), a sequence prior's ``SequenceContext`` or lengths, or None) is
    the same in both directions and for every member of a ``Chain``. Caches are opaque to everyone
    but their producer.

    Subclass requirements
    ---------------------
    ``event_ndim`` : int, and ``differentiable`` : the directions that have a backward pass
    (default both; a discrete flow samples without one: ("inverse",)).
    ``init(rng, dtype="float64") -> params``: a tree of arrays (a dict).
    ``check_inputs(params, v, context, direction) -> None``: raise ValueError or TypeError, naming
    the argument, unless v and context are valid inputs of ``direction`` under params.
    ``_forward(params, x, context) -> (y, logdet, cache)`` and ``_inverse(params, y, context) ->
    (x, logdet, cache)``: the unchecked maps, called only by this object's own ``forward`` and
    ``inverse``; code that traces them with autograd must stay functional (no in-place writes).
    ``forward_vjp(params, cache, dy, dlogdet) -> (grads, dx, dcontext)`` and ``inverse_vjp(params,
    cache, dx, dlogdet) -> (grads, dy, dcontext)`` for each direction in ``differentiable``:
    the vector-Jacobian products of (value, logdet) with (dvalue, dlogdet) from that direction's
    cache, with grads mirroring params and dcontext None where the context is None or not a float
    array.

    Example: ``y, logdet, cache = flow.forward(params, x, cond)`` and
    ``grads, dx, dcond = flow.forward_vjp(params, cache, dy, dlogdet)``.
    """

    event_ndim: int
    differentiable: tuple[str, ...] = DIRECTIONS

    @abstractmethod
    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        """Fresh parameters drawn from ``rng`` (a host generator), of float ``dtype``."""

    @abstractmethod
    def check_inputs(self, params: Tree, v: Array, context: Any, direction: str) -> None:
        """Raise ValueError or TypeError unless (v, context) are valid inputs of ``direction``."""

    @abstractmethod
    def _forward(self, params: Tree, x: Array, context: Any) -> Result:
        """Base -> data without checking the inputs."""

    @abstractmethod
    def _inverse(self, params: Tree, y: Array, context: Any) -> Result:
        """Data -> base without checking the inputs."""

    def forward(self, params: Tree, x: Array, context: Any = None, *, check: bool = True) -> Result:
        """Base -> data (sampling): (y, log|det dy/dx| : lead, cache); inputs checked unless ``check`` is False."""
        if check:
            self.check_inputs(params, x, context, "forward")
        return self._forward(params, x, context)

    def inverse(self, params: Tree, y: Array, context: Any = None, *, check: bool = True) -> Result:
        """Data -> base (density): (x, log|det dx/dy| : lead, cache); inputs checked unless ``check`` is False."""
        if check:
            self.check_inputs(params, y, context, "inverse")
        return self._inverse(params, y, context)

    def vjp(self, direction: str) -> Callable[[Tree, Any, Array, Array], VJP]:
        """The backward pass of ``direction`` ("forward" or "inverse"): ``forward_vjp`` or ``inverse_vjp``.

        Raises TypeError where this bijection has no backward pass in that direction."""
        if direction not in self.differentiable:
            raise TypeError(f"{type(self).__name__} is not differentiable in the {direction} direction "
                            f"(differentiable: {', '.join(self.differentiable) or 'none'})")
        return getattr(self, f"{direction}_vjp")


class DirectedBijection(Bijection):
    """A bijection written once for both directions: a subclass implements
    ``_apply(params, v, context, direction) -> (value, logdet, cache)`` and
    ``_apply_vjp(params, cache, dvalue, dlogdet, direction) -> (grads, dinput, dcontext)``, and
    ``forward``, ``inverse`` and both VJPs route to them with their direction."""

    @abstractmethod
    def _apply(self, params: Tree, v: Array, context: Any, direction: str) -> Result:
        """``direction``'s map of v, unchecked: (value, logdet, cache)."""

    @abstractmethod
    def _apply_vjp(self, params: Tree, cache: Any, dvalue: Array, dlogdet: Array, direction: str) -> VJP:
        """The backward pass of ``_apply`` in ``direction``."""

    def _forward(self, params: Tree, x: Array, context: Any) -> Result:
        return self._apply(params, x, context, "forward")

    def _inverse(self, params: Tree, y: Array, context: Any) -> Result:
        return self._apply(params, y, context, "inverse")

    def forward_vjp(self, params: Tree, cache: Any, dy: Array, dlogdet: Array) -> VJP:
        return self._apply_vjp(params, cache, dy, dlogdet, "forward")

    def inverse_vjp(self, params: Tree, cache: Any, dx: Array, dlogdet: Array) -> VJP:
        return self._apply_vjp(params, cache, dx, dlogdet, "inverse")


class Inverse(Bijection):
    """The bijection ``bijection`` with its directions exchanged: Inverse(b).forward is b.inverse,
    Inverse(b).inverse is b.forward, and likewise the backward passes; parameters are b's.

    Example: ``IAF`` is ``Inverse`` of an AF whose scalar transform has formula and solve swapped.
    """

    def __init__(self, bijection: Bijection):
        self.bijection = bijection
        self.event_ndim = bijection.event_ndim
        self.differentiable = tuple(d for d in DIRECTIONS if opposite(d) in bijection.differentiable)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return self.bijection.init(rng, dtype)

    def check_inputs(self, params: Tree, v: Array, context: Any, direction: str) -> None:
        self.bijection.check_inputs(params, v, context, opposite(direction))

    def _forward(self, params: Tree, x: Array, context: Any) -> Result:
        return self.bijection.inverse(params, x, context, check=False)

    def _inverse(self, params: Tree, y: Array, context: Any) -> Result:
        return self.bijection.forward(params, y, context, check=False)

    def forward_vjp(self, params: Tree, cache: Any, dy: Array, dlogdet: Array) -> VJP:
        return self.bijection.vjp("inverse")(params, cache, dy, dlogdet)

    def inverse_vjp(self, params: Tree, cache: Any, dx: Array, dlogdet: Array) -> VJP:
        return self.bijection.vjp("forward")(params, cache, dx, dlogdet)
