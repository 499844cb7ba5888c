"""A small fully connected network (the conditioner of coupling and elementwise flow layers, among others)."""

from __future__ import annotations

from typing import Any, Sequence

from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.nn.activations import activation as get_activation
from mini_flows.nn.layers import Dense, affine
from mini_flows.nn.tree import Tree


class MLP:
    """f(x) = W_L act(... act(x W_1 + b_1) ...) + b_L, with ``len(hidden_sizes)`` hidden layers.

    Inputs: x : (..., n_in). Returns y : (..., n_out).
    Parameters: {"dense0": ..., "dense1": ...}, one Dense block per layer, or the ``names`` given
    (one per layer; a params tree holding further keys is accepted, so a network can keep its own
    entries beside the MLP's).
    """

    def __init__(self, n_in: int, hidden_sizes: Sequence[int], n_out: int, activation: str = "relu",
                 names: Sequence[str] | None = None):
        sizes = [n_in, *hidden_sizes, n_out]
        for size in sizes:
            check_positive_int("layer size", size)
        self.layers = [Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.names = [f"dense{i}" for i in range(len(self.layers))] if names is None else list(names)
        if len(self.names) != len(self.layers):
            raise ValueError(f"names must give one name per layer ({len(self.layers)}), got {self.names}")
        self.act_forward, self.act_backward = get_activation(activation)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {name: layer.init(rng, dtype) for name, layer in zip(self.names, self.layers)}

    def forward(self, params: Tree, x: Array, *, check: bool = True) -> tuple[Array, Any]:
        """y : (..., n_out) and a cache from x : (..., n_in), which the first layer checks (dtype,
        shape, finite) unless ``check`` is False; later layers take what the one before made."""
        caches = []
        for i, layer in enumerate(self.layers):
            if i == 0 and check:
                x, dense_cache = layer.forward(params[self.names[i]], x)
            else:
                x, dense_cache = affine(params[self.names[i]], x), x  # Dense.forward's map and cache, unchecked
            act_cache = None
            if i < len(self.layers) - 1:
                x, act_cache = self.act_forward(x)
            caches.append((dense_cache, act_cache))
        return x, caches

    def backward(self, params: Tree, cache: Any, dy: Array) -> tuple[Tree, Array]:
        grads: Tree = {}
        for i in reversed(range(len(self.layers))):
            dense_cache, act_cache = cache[i]
            if act_cache is not None:
                dy = self.act_backward(act_cache, dy)
            grads[self.names[i]], dy = self.layers[i].backward(params[self.names[i]], dense_cache, dy)
        return {name: grads[name] for name in self.names}, dy
