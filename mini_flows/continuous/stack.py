"""Layered flows: several AF, IAF, SCF or elementwise layers with the order reversed between them.

    inverse (data -> base):  eps = g_L(... g_2(g_1(z)) ...),  logdet = sum_l logdet_l
    forward (base -> data):  z = g_1^-1(... g_L^-1(eps) ...)

where g_l is layer l's ``inverse``. Every layer sees the same conditioning input (an arrow into
a bold diamond of the paper's Figure 4 reaches every transformation inside it). Layer l reverses
the autoregressive order (or swaps the SCF halves) when l is odd, so all dimensions interact.
"""

from __future__ import annotations

from typing import Any, Sequence

from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.continuous.layers import AF, IAF, SCF, Elementwise, Flow, Grads, Result
from mini_flows.nn.tree import Tree

LAYERS = {"af": AF, "iaf": IAF, "scf": SCF, "none": Elementwise}


class FlowStack(Flow):
    """``num_layers`` layers of one kind ("af", "iaf", "scf" or "none" for elementwise) over
    vectors of ``dim`` entries; the Flow shape contract and methods.

    Parameters: {"layer0": ..., "layer1": ...}.

    Example: ``flow = FlowStack("af", 2, 5, NLSqTransform())`` is the 5-layer 2-D AF of Figure 5c.
    """

    def __init__(self, kind: str, dim: int, num_layers: int, transform: Any, cond_size: int = 0,
                 hidden_sizes: Sequence[int] = (64,), activation: str = "relu"):
        if kind not in LAYERS:
            raise ValueError(f"unknown layer kind {kind!r}; choose from {sorted(LAYERS)}")
        check_positive_int("num_layers", num_layers)
        self._check_config(dim, cond_size, transform)
        self.kind = kind
        config = dict(cond_size=cond_size, hidden_sizes=hidden_sizes, activation=activation)
        if kind == "none":
            self.layers = [Elementwise(dim, transform, **config) for _ in range(num_layers)]
        else:
            self.layers = [LAYERS[kind](dim, transform, reverse=l % 2 == 1, **config) for l in range(num_layers)]

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {f"layer{l}": layer.init(rng, dtype) for l, layer in enumerate(self.layers)}

    def _inverse(self, params: Tree, z: Array, cond: Array | None) -> Result:
        logdet, caches = 0.0, []
        for l, layer in enumerate(self.layers):
            (z, logdet_l), cache = layer._inverse(params[f"layer{l}"], z, cond)
            logdet, caches = logdet + logdet_l, caches + [cache]
        return (z, logdet), caches

    def _forward(self, params: Tree, eps: Array, cond: Array | None) -> Result:
        logdet, caches = 0.0, []
        for l in reversed(range(len(self.layers))):
            (eps, logdet_l), cache = self.layers[l]._forward(params[f"layer{l}"], eps, cond)
            logdet, caches = logdet + logdet_l, [cache] + caches
        return (eps, logdet), caches

    def inverse_backward(self, params: Tree, cache: Any, deps: Array, dlogdet: Array) -> Grads:
        grads: list[Tree] = [{}] * len(self.layers)
        dcond = None
        for l in reversed(range(len(self.layers))):
            grads[l], deps, dcond_l = self.layers[l].inverse_backward(params[f"layer{l}"], cache[l], deps, dlogdet)
            dcond = _add(dcond, dcond_l)
        return {f"layer{l}": g for l, g in enumerate(grads)}, deps, dcond

    def forward_backward(self, params: Tree, cache: Any, dz: Array, dlogdet: Array) -> Grads:
        grads: list[Tree] = []
        dcond = None
        for l, layer in enumerate(self.layers):
            grads_l, dz, dcond_l = layer.forward_backward(params[f"layer{l}"], cache[l], dz, dlogdet)
            grads.append(grads_l)
            dcond = _add(dcond, dcond_l)
        return {f"layer{l}": g for l, g in enumerate(grads)}, dz, dcond


def _add(total: Array | None, part: Array | None) -> Array | None:
    return part if total is None else total + part

