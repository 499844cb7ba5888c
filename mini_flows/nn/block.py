"""The one convention every block of ``mini_flows.nn`` follows (CS231n style: a small class holds
the configuration, the parameters travel explicitly):

    params = block.init(rng, dtype)                       # dict of named arrays (or of dicts)
    y, cache = block.forward(params, x, *inputs)          # cache: opaque, for backward only
    grads, dx, *d_inputs = block.backward(params, cache, dy)

``grads`` mirrors ``params`` key for key; ``dx`` matches x, then one gradient per further array
input of ``forward`` in its order (``MADE``: dcond; ``LSTM``: (dh0, dc0) for the initial state),
None where that input is absent or not differentiable (integer tokens: ``Embedding`` returns
(grads, None)). Options that are not arrays (``causal``) and masks get no gradient slot. A block
whose output is a pair takes one gradient per part (``LSTM.backward(params, cache, d_outputs,
d_final)``). Blocks used for generation also have ``step`` methods: forward only, unchecked and
uncached.

Activations and losses are functions in the same style without parameters:
``y, cache = act_forward(x)`` and ``dx = act_backward(cache, dy)``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mini_flows.backend import Array
from mini_flows.nn.tree import Tree


@runtime_checkable
class Block(Protocol):
    """A block with parameters: ``init``, ``forward`` and a hand-written ``backward`` (see the
    module docstring for the contract)."""

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        """Fresh parameters drawn from ``rng`` (a host generator) in float ``dtype``."""

    def forward(self, params: Tree, x: Array, *inputs: Any) -> tuple[Any, Any]:
        """(output, cache)."""

    def backward(self, params: Tree, cache: Any, dy: Any, *d_outputs: Any) -> tuple:
        """(grads mirroring params, dx, then one gradient per further array input)."""
