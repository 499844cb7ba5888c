"""Pre-layer-norm Transformer encoder with hand-written backward passes.

References: Vaswani et al., "Attention Is All You Need" (2017); Xiong et al., "On Layer
Normalization in the Transformer Architecture" (2020) for the pre-layer-norm block.

    block:   x <- x + Attn(LN_1(x)),  x <- x + MLP(LN_2(x)),  MLP(h) = act(h W_1 + b_1) W_2 + b_2
    encoder: y = LN_f(block_L(... block_1(x + P[:T]) ...)),  P sinusoidal (fixed) or learned

Causal generation one position at a time (inference only) uses a key/value cache per block, so
position t costs O(t) attention instead of a re-run over the whole prefix::

    cache = encoder.start(params, batch)
    y_t, cache = encoder.step(params, cache, x_t, t)    # t = 0, 1, ..., max_len - 1 in order
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.nn import init
from mini_flows.nn.activations import activation as activation_pair
from mini_flows.nn.attention import LayerNorm, MultiHeadAttention, all_positions, check_sequence
from mini_flows.nn.layers import Dense, affine
from mini_flows.nn.tree import Tree

POSITIONS = ("sinusoidal", "learned")


def sinusoidal_positions(length: int, dim: int, dtype: Any = "float64") -> Array:
    """Fixed position encodings (Vaswani et al. 2017, section 3.5), shape (length, dim):

        P[t, 2i] = sin(t / 10000^(2i / dim)),  P[t, 2i + 1] = cos(t / 10000^(2i / dim)).
    """
    check_positive_int("length", length)
    check_positive_int("dim", dim)
    xp = B.xp()
    t = xp.arange(length, dtype="float64")[:, None]
    i = xp.arange(dim)
    angle = t / 10000.0 ** ((i - i % 2) / dim)
    return xp.where(i % 2 == 0, xp.sin(angle), xp.cos(angle)).astype(dtype)


class TransformerBlock:
    """One pre-layer-norm Transformer block:

        x' = x + MultiHeadAttention(LN_1(x)),  y = x' + act(LN_2(x') W_1 + b_1) W_2 + b_2.

    Inputs: x : (batch, T, d_model); key_mask : (batch, T) of 0/1 (0 = padding, never attended
    to) or None; causal : query t attends to keys s <= t only; queries : a slice of the positions
    (bidirectional only) or None for all.
    Returns y : (batch, Q, d_model) at the Q query positions: LN_1 and the keys and values run at
    every position, the rest of the block only at the query positions.
    Parameters: "ln1", "attn", "ln2" (LayerNorm, MultiHeadAttention, LayerNorm trees),
    "fc1" Dense(d_model, d_ff), "fc2" Dense(d_ff, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, activation: str = "gelu"):
        check_positive_int("d_ff", d_ff)
        self.d_model, self.num_heads, self.d_ff, self.activation = d_model, num_heads, d_ff, activation
        self.ln1, self.attn = LayerNorm(d_model), MultiHeadAttention(d_model, num_heads)
        self.ln2, self.fc1, self.fc2 = LayerNorm(d_model), Dense(d_model, d_ff), Dense(d_ff, d_model)
        self.act_forward, self.act_backward = activation_pair(activation)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {
            "ln1": self.ln1.init(rng, dtype),
            "attn": self.attn.init(rng, dtype),
            "ln2": self.ln2.init(rng, dtype),
            "fc1": self.fc1.init(rng, dtype),
            "fc2": self.fc2.init(rng, dtype),
        }

    def forward(
        self, params: Tree, x: Array, causal: bool = False, key_mask: Array | None = None,
        queries: slice | None = None, *, check: bool = True,
    ) -> tuple[Array, Any]:
        """Inputs checked unless ``check`` is False (for an encoder that checked them already)."""
        if check:
            check_sequence(x, key_mask, params["ln1"]["gamma"], self.d_model)
        queries = all_positions(queries, causal)
        h, ln1_cache = self.ln1.forward(params["ln1"], x, check=False)
        a, attn_cache = self.attn.forward(params["attn"], h, causal, key_mask, queries, check=False)
        x = x[:, queries] + a
        h, ln2_cache = self.ln2.forward(params["ln2"], x, check=False)
        act, act_cache = self.act_forward(affine(params["fc1"], h))
        cache = (queries, ln1_cache, attn_cache, ln2_cache, h, act_cache, act)
        y = affine(params["fc2"], act)
        y += x
        return y, cache

    def start(self, params: Tree, batch: int, length: int) -> Tree:
        """An empty key/value cache for ``step`` (see ``MultiHeadAttention.start``)."""
        return self.attn.start(params["attn"], batch, length)

    def step(self, params: Tree, kv: Tree, x_t: Array, t: int) -> tuple[Array, Tree]:
        """The causal block at the new position t (inference only, unchecked): x_t : (batch,
        d_model) -> y_t : (batch, d_model), equal to ``forward(params, x, causal=True)[0][:, t]`` to
        round-off, and kv with position t added (in place)."""
        a, kv = self.attn.step(params["attn"], kv, self.ln1.step(params["ln1"], x_t), t)
        x = x_t + a
        h, _ = self.act_forward(affine(params["fc1"], self.ln2.step(params["ln2"], x)))
        return x + affine(params["fc2"], h), kv

    def backward(self, params: Tree, cache: Any, dy: Array) -> tuple[Tree, Array]:
        queries, ln1_cache, attn_cache, ln2_cache, fc1_cache, act_cache, fc2_cache = cache
        grads = {}
        grads["fc2"], dh = self.fc2.backward(params["fc2"], fc2_cache, dy)
        dh = self.act_backward(act_cache, dh)
        grads["fc1"], dh = self.fc1.backward(params["fc1"], fc1_cache, dh)
        grads["ln2"], dh = self.ln2.backward(params["ln2"], ln2_cache, dh)
        dx = dy + dh
        grads["attn"], dh = self.attn.backward(params["attn"], attn_cache, dx)
        grads["ln1"], dh = self.ln1.backward(params["ln1"], ln1_cache, dh)
        dh[:, queries] += dx
        return {name: grads[name] for name in ("ln1", "attn", "ln2", "fc1", "fc2")}, dh


class TransformerEncoder:
    """A stack of pre-layer-norm blocks over position-encoded inputs, then a final layer norm:

        h_0 = x + P[:T],  h_l = block_l(h_{l-1}),  y = LN_f(h_L),

    with P fixed sinusoidal encodings (``positions="sinusoidal"``, no parameters; the (max_len,
    d_model) table is built once per dtype and backend) or a learned table
    (``positions="learned"``, parameter "positions" : (max_len, d_model)).

    Inputs: x : (batch, T, d_model) with T <= max_len; key_mask : (batch, T) of 0/1 (0 = padding,
    never attended to) or None; causal : position t attends to positions s <= t (itself
    included: shift the inputs to depend strictly on the past); outputs : a slice of the
    positions (bidirectional only) or None for all.
    Returns y : (batch, Q, d_model) at the Q output positions.
    Parameters: "block0", ..., "block{L-1}" (TransformerBlock trees), "ln_f" (LayerNorm) and,
    when learned, "positions".
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        num_layers: int,
        max_len: int,
        positions: str = "sinusoidal",
        activation: str = "gelu",
    ):
        check_positive_int("num_layers", num_layers)
        check_positive_int("max_len", max_len)
        if positions not in POSITIONS:
            raise ValueError(f"unknown positions {positions!r}; choose from {POSITIONS}")
        self.d_model, self.max_len, self.positions = d_model, max_len, positions
        self.blocks = [TransformerBlock(d_model, num_heads, d_ff, activation) for _ in range(num_layers)]
        self.ln_f = LayerNorm(d_model)
        self._sinusoids: dict[Any, Array] = {}

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        params = {f"block{i}": block.init(rng, dtype) for i, block in enumerate(self.blocks)}
        params["ln_f"] = self.ln_f.init(rng, dtype)
        if self.positions == "learned":
            params["positions"] = init.normal(rng, (self.max_len, self.d_model), 1 / math.sqrt(self.d_model), dtype)
        return params

    def forward(
        self, params: Tree, x: Array, causal: bool = False, key_mask: Array | None = None,
        outputs: slice | None = None, *, check: bool = True,
    ) -> tuple[Array, Any]:
        """y : (batch, Q, d_model) at the positions ``outputs`` (all T when None; bidirectional
        only): the last block runs its queries, feed-forward and LN_f only there. Inputs checked
        unless ``check`` is False (for a network that checked them already)."""
        if check:
            check_sequence(x, key_mask, params["ln_f"]["gamma"], self.d_model)
        length = B.value(x).shape[1]
        if not 1 <= length <= self.max_len:
            raise ValueError(f"x has length {length}; the encoder takes 1 to max_len = {self.max_len} positions")
        h = x + self._table(params, B.value(x).dtype)[:length]
        caches = []
        for i, block in enumerate(self.blocks):
            queries = outputs if i == len(self.blocks) - 1 else None
            h, cache = block.forward(params[f"block{i}"], h, causal, key_mask, queries, check=False)
            caches.append(cache)
        y, ln_cache = self.ln_f.forward(params["ln_f"], h, check=False)
        return y, (caches, ln_cache, length)

    def start(self, params: Tree, batch: int) -> list[Tree]:
        """Empty key/value caches for ``step``, one per block, for up to max_len positions."""
        return [block.start(params[f"block{i}"], batch, self.max_len) for i, block in enumerate(self.blocks)]

    def step(self, params: Tree, cache: list[Tree], x_t: Array, t: int) -> tuple[Array, list[Tree]]:
        """The causal encoder at the new position t < max_len (inference only, unchecked).

        Inputs: x_t : (batch, d_model), the input at position t; cache : from ``start`` after the
        steps 0..t-1.
        Returns y_t : (batch, d_model), equal to ``forward(params, x, causal=True)[0][:, t]`` to
        round-off, and the cache with position t added (in place).
        """
        h = x_t + self._table(params, B.value(x_t).dtype)[t]
        for i, block in enumerate(self.blocks):
            h, cache[i] = block.step(params[f"block{i}"], cache[i], h, t)
        return self.ln_f.step(params["ln_f"], h), cache

    def _table(self, params: Tree, dtype: Any) -> Array:
        """P : (max_len, d_model), the learned parameter or the sinusoids, built once per dtype and backend."""
        if self.positions == "learned":
            return params["positions"]
        key = (B.get_backend(), str(dtype))
        if key not in self._sinusoids:
            self._sinusoids[key] = sinusoidal_positions(self.max_len, self.d_model, dtype)
        return self._sinusoids[key]

    def backward(self, params: Tree, cache: Any, dy: Array) -> tuple[Tree, Array]:
        caches, ln_cache, length = cache
        grads = {}
        grads["ln_f"], dh = self.ln_f.backward(params["ln_f"], ln_cache, dy)
        for i in reversed(range(len(self.blocks))):
            grads[f"block{i}"], dh = self.blocks[i].backward(params[f"block{i}"], caches[i], dh)
        ordered = {name: grads[name] for name in params if name != "positions"}
        if self.positions == "learned":
            d_positions = B.xp().zeros_like(params["positions"])
            d_positions[:length] = dh.sum(axis=0)
            ordered["positions"] = d_positions
        return ordered, dh
