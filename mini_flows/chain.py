"""``Chain``: the composition of bijections, f = b_1 o b_2 o ... o b_L.

    forward (base -> data):  y = b_1.forward(... b_L.forward(x))          (b_L next to the base)
    inverse (data -> base):  x = b_L.inverse(... b_1.inverse(y)),  logdet = sum_l logdet_l

the order of function composition, as in distrax's and TensorFlow Probability's ``Chain``. Every
member sees the same context (the paper's Figure 4: an arrow into a bold diamond reaches every
transformation inside it). A layered continuous flow (``FlowStack``) and a discrete flow model's
flows are chains.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.bijection import DIRECTIONS, VJP, Bijection, Result
from mini_flows.nn.tree import Tree


class ChainCache(NamedTuple):
    """What a chain's backward pass needs: ``members[l]`` is member l's cache (in list order)."""

    members: tuple[Any, ...]


class Chain(Bijection):
    """Members ``bijections`` [b_1, ..., b_L] composed as b_1 o ... o b_L; the Bijection contract.

    Parameters: {names[l]: member l's tree} (``names`` defaults to "layer0", "layer1", ...); a
    params tree with further keys is accepted, so a model can pass its whole tree. Differentiable
    in the directions every member is. ``event_ndim`` is the members' (and must be given for an
    empty chain, the identity with zero log-det).

    Input checking: a chain checks its input as the member it enters through does (b_L forward,
    b_1 inverse); the members inside run unchecked, since each one's input is another's output.

    Example: ``Chain([AF(2, t), AF(2, t, reverse=True)])`` with params {"layer0": ..., "layer1": ...}.
    """

    def __init__(self, bijections: Sequence[Bijection], names: Sequence[str] | None = None,
                 event_ndim: int | None = None):
        self.bijections = tuple(bijections)
        self.names = tuple(f"layer{l}" for l in range(len(self.bijections))) if names is None else tuple(names)
        if len(self.names) != len(self.bijections) or len(set(self.names)) != len(self.names):
            raise ValueError(f"a chain needs one distinct name per member: {len(self.bijections)} members, "
                             f"names {self.names}")
        ndims = {b.event_ndim for b in self.bijections} | ({event_ndim} if event_ndim is not None else set())
        if len(ndims) != 1:
            raise ValueError("members of a chain must share event_ndim (given for an empty chain), "
                             f"got {sorted(ndims)}")
        self.event_ndim = ndims.pop()
        self.differentiable = tuple(d for d in DIRECTIONS if all(d in b.differentiable for b in self.bijections))

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {name: b.init(rng, dtype) for name, b in zip(self.names, self.bijections)}

    def _order(self, direction: str) -> range:
        """Member indices in the order ``direction`` applies them."""
        n = len(self.bijections)
        return range(n - 1, -1, -1) if direction == "forward" else range(n)

    def check_inputs(self, params: Tree, v: Array, context: Any, direction: str) -> None:
        for l in self._order(direction)[:1]:
            self.bijections[l].check_inputs(params[self.names[l]], v, context, direction)

    def _forward(self, params: Tree, x: Array, context: Any) -> Result:
        return self._run(params, x, context, "forward")

    def _inverse(self, params: Tree, y: Array, context: Any) -> Result:
        return self._run(params, y, context, "inverse")

    def _run(self, params: Tree, v: Array, context: Any, direction: str) -> Result:
        caches: list[Any] = [None] * len(self.bijections)
        logdet = None
        for l in self._order(direction):
            run = getattr(self.bijections[l], direction)
            v, logdet_l, caches[l] = run(params[self.names[l]], v, context, check=False)
            logdet = logdet_l if logdet is None else logdet + logdet_l
        if logdet is None:
            logdet = B.xp().zeros(v.shape[: v.ndim - self.event_ndim], dtype=B.value(v).dtype)
        return v, logdet, ChainCache(tuple(caches))

    def forward_vjp(self, params: Tree, cache: ChainCache, dy: Array, dlogdet: Array) -> VJP:
        return self._backprop(params, cache, dy, dlogdet, "forward")

    def inverse_vjp(self, params: Tree, cache: ChainCache, dx: Array, dlogdet: Array) -> VJP:
        return self._backprop(params, cache, dx, dlogdet, "inverse")

    def _backprop(self, params: Tree, cache: ChainCache, d: Array, dlogdet: Array, direction: str) -> VJP:
        """Through the members in the reverse of the order ``direction`` applied them; every member's
        logdet gets dlogdet, and the context's gradient sums over the members."""
        grads: dict[str, Tree] = {}
        dcontext = None
        for l in reversed(self._order(direction)):
            name = self.names[l]
            grads[name], d, dcontext_l = self.bijections[l].vjp(direction)(params[name], cache.members[l], d, dlogdet)
            if dcontext_l is not None:
                dcontext = dcontext_l if dcontext is None else dcontext + dcontext_l
        return {name: grads[name] for name in self.names}, d, dcontext
