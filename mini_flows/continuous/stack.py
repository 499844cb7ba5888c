"""Layered flows: several AF, IAF, SCF or elementwise layers with the order reversed between them.

    inverse (data -> base):  eps = g_L(... g_2(g_1(z)) ...),  logdet = sum_l logdet_l
    forward (base -> data):  z = g_1^-1(... g_L^-1(eps) ...)

where g_l is layer l's ``inverse``: a ``Chain`` of the layers in list order. Every layer sees the
same conditioning input (an arrow into a bold diamond of the paper's Figure 4 reaches every
transformation inside it). Layer l reverses the autoregressive order (or swaps the SCF halves)
when l is odd, so all dimensions interact.
"""

from __future__ import annotations

from typing import Any, Sequence

from mini_flows.chain import Chain
from mini_flows.checks import check_positive_int
from mini_flows.continuous.layers import AF, IAF, SCF, Elementwise

LAYERS = {"af": AF, "iaf": IAF, "scf": SCF, "none": Elementwise}


class FlowStack(Chain):
    """``num_layers`` layers of one kind ("af", "iaf", "scf" or "none" for elementwise) over
    vectors of ``dim`` entries, chained; the Bijection contract with context cond : (..., cond_size)
    (None when cond_size is 0).

    Parameters: {"layer0": ..., "layer1": ...}; ``layers`` lists the layers, layer0 next to the data.

    Example: ``flow = FlowStack("af", 2, 5, NLSqTransform())`` is the 5-layer 2-D AF of Figure 5c.
    """

    def __init__(self, kind: str, dim: int, num_layers: int, transform: Any, cond_size: int = 0,
                 hidden_sizes: Sequence[int] = (64,), activation: str = "relu"):
        if kind not in LAYERS:
            raise ValueError(f"unknown layer kind {kind!r}; choose from {sorted(LAYERS)}")
        check_positive_int("num_layers", num_layers)
        config = dict(cond_size=cond_size, hidden_sizes=hidden_sizes, activation=activation)
        if kind == "none":
            layers = [Elementwise(dim, transform, **config) for _ in range(num_layers)]
        else:
            layers = [LAYERS[kind](dim, transform, reverse=l % 2 == 1, **config) for l in range(num_layers)]
        super().__init__(layers)
        self.kind, self.dim, self.cond_size, self.transform = kind, dim, cond_size, transform
        self.layers = list(self.bijections)
