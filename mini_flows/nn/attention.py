"""Layer normalisation and multi-head scaled dot-product attention, with hand-written backward passes.

References: Ba, Kiros, Hinton, "Layer Normalization" (2016); Vaswani et al., "Attention Is All
You Need" (2017), section 3.2.

Both follow the block protocol of ``mini_flows.nn.layers``::

    params = block.init(rng, dtype)
    y, cache = block.forward(params, x, ...)
    grads, dx = block.backward(params, cache, dy)

and add, for generating one position at a time (inference only: no gradient, no input checks, the
caller checks once), ``LayerNorm.step(params, x_t)`` and causal attention with a key/value cache::

    kv = attn.start(params, batch, length)
    y_t, kv = attn.step(params, kv, x_t, t)      # t = 0, 1, ..., length - 1 in order
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_mask, check_positive_int, check_shape
from mini_flows.nn import init
from mini_flows.nn.layers import Dense, affine, column_sums, row_sums
from mini_flows.nn.tree import Tree


class LayerNorm:
    """Normalise the last axis, then scale and shift (Ba et al. 2016):

        mu = mean(x),  sigma^2 = mean((x - mu)^2),  y = gamma * (x - mu) / sqrt(sigma^2 + eps) + beta.

    Inputs: x : (..., dim). Returns y : (..., dim).
    Parameters: gamma : (dim,) (ones at init), beta : (dim,) (zeros at init).
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        check_positive_int("dim", dim)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.dim, self.eps = dim, float(eps)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"gamma": init.zeros((self.dim,), dtype) + 1, "beta": init.zeros((self.dim,), dtype)}

    def forward(self, params: Tree, x: Array, *, check: bool = True) -> tuple[Array, Any]:
        """Inputs checked unless ``check`` is False (for blocks that checked them already)."""
        if check:
            check_float("x", x, like=params["gamma"])
            if B.value(x).ndim < 1 or x.shape[-1] != self.dim:
                raise ValueError(f"x must have shape (..., {self.dim}), got {tuple(B.value(x).shape)}")
        return self._normalise(params, x)

    def step(self, params: Tree, x_t: Array) -> Array:
        """The forward map alone, unchecked and uncached (inference): x_t : (..., dim) -> (..., dim)."""
        return self._normalise(params, x_t)[0]

    def _normalise(self, params: Tree, x: Array) -> tuple[Array, Any]:
        xhat = x - row_sums(x, 1 / self.dim)  # x - mu, then in place (on fresh arrays, as in ``affine``):
        rstd = 1 / B.xp().sqrt(row_sums(xhat * xhat, 1 / self.dim) + self.eps)  # 1 / sqrt(sigma^2 + eps)
        xhat *= rstd
        y = xhat * params["gamma"]
        y += params["beta"]
        return y, (xhat, rstd)

    def backward(self, params: Tree, cache: Any, dy: Array) -> tuple[Tree, Array]:
        """dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; the two means are
        matrix-vector products of dy and dy * xhat with gamma / dim."""
        xhat, rstd = cache
        gamma = params["gamma"]
        dy_xhat = dy * xhat
        grads = {"gamma": column_sums(dy_xhat), "beta": column_sums(dy)}
        gamma_mean = gamma[:, None] / self.dim
        means = xhat * (dy_xhat @ gamma_mean)  # xhat * mean(g * xhat)
        means += dy @ gamma_mean  # + mean(g)
        dx = dy * gamma  # g
        dx -= means
        dx *= rstd
        return grads, dx


def _neg_large(dtype: Any) -> float:
    """A large finite negative number for ``dtype``: exp(it - anything finite) underflows to 0."""
    return float(B.xp().finfo(dtype).min) / 2


PROJECTIONS = ("query", "key", "value")


def check_sequence(x: Array, key_mask: Array | None, like: Array, d_model: int) -> None:
    """The input checks of attention, a Transformer block and an encoder, made once by whichever is
    called: x : (batch, T, d_model) float of ``like``'s dtype and finite, key_mask : (batch, T) of
    0/1 or None."""
    check_float("x", x, like=like)
    check_shape("x", x, (None, None, d_model))
    if key_mask is not None:
        check_mask("key_mask", key_mask, B.value(x).shape[:2])


def all_positions(queries: slice | None, causal: bool) -> slice:
    """The query positions of a forward call as a slice: ``queries``, or every position when None.
    Causal attention takes every position (its query blocks follow the positions)."""
    if queries is None:
        return slice(None)
    if not isinstance(queries, slice):
        raise TypeError(f"queries must be a slice of positions or None, got {type(queries).__name__}")
    if causal and queries != slice(None):
        raise ValueError("causal attention computes every position; queries must be None")
    return queries


class MultiHeadAttention:
    """Multi-head scaled dot-product self-attention (Vaswani et al. 2017, eq. 1 and section 3.2.2):

        Q = x W^Q + b^Q,  K = x W^K + b^K,  V = x W^V + b^V, each split into h heads of d_k = d_model / h,
        head_i = softmax(Q_i K_i^T / sqrt(d_k) + M) V_i,
        y = concat(head_1, ..., head_h) W^O + b^O,

    where the mask M is 0 where query t may attend to key s and -inf elsewhere: s > t under
    ``causal``, and s a padding position (key_mask 0). Masked weights are set to exactly 0 (see
    ``_weights``); a query with no key left to attend to gets attention weights 0 (head_i = 0
    there, y = b^O) instead of NaN.

    K and V come from one matmul of width 2 d_model, x [W^K W^V], Q from one at the query
    positions; the softmax's division by the row sums is applied to the (T, d_k) product e V
    rather than to the (T, T) weights e.
    Causal attention runs over blocks of ``query_block`` query positions, each against the keys up
    to its own last position: the scores above the diagonal blocks, all masked, are never computed
    (a quarter of the (T, T) work skipped at T = 2 query_block, half as T grows).

    Inputs: x : (batch, T, d_model); key_mask : (batch, T) of 0/1 or None; queries : a slice of the
    T positions (bidirectional attention only) or None for all.
    Returns y : (batch, Q, d_model) at the Q query positions: keys and values come from every
    position, queries and everything after them only from those asked for (a bipartite flow needs
    its network's output at half the positions).
    Parameters: "query", "key", "value", "output", each a Dense(d_model, d_model) tree {W, b}.

    Incremental causal attention (``start``, ``step``) keeps the keys and values of the positions
    seen so far in a preallocated cache, so position t costs O(t) instead of a re-run over all T.
    """

    def __init__(self, d_model: int, num_heads: int, query_block: int = 32):
        check_positive_int("d_model", d_model)
        check_positive_int("num_heads", num_heads)
        check_positive_int("query_block", query_block)
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.query_block = query_block
        self.scales = (1 / math.sqrt(self.d_head), 1.0, 1.0)  # on W^Q, W^K, W^V and biases: Q K^T / sqrt(d_k)
        self.dense = Dense(d_model, d_model)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {name: self.dense.init(rng, dtype) for name in (*PROJECTIONS, "output")}

    def _project(self, params: Tree, x: Array, queries: slice) -> tuple[Array, Array, Array, tuple[Array, Array]]:
        """x : (batch, T, d_model) -> Q / sqrt(d_k) at the rows ``queries`` : (batch, heads, Q,
        d_head), and K, V at every row : (batch, heads, T, d_head); Q from x[:, queries] W_q with
        W_q = W^Q / sqrt(d_k), K and V from one product x W_kv with W_kv = [W^K W^V] : (d_model,
        2 d_model) (biases likewise). Also returns (W_q, W_kv) for the backward pass."""
        xp = B.xp()
        c = self.scales[0]
        W_q, b_q = params["query"]["W"] * c, params["query"]["b"] * c
        W_kv = xp.concatenate([params["key"]["W"], params["value"]["W"]], axis=1)
        b_kv = xp.concatenate([params["key"]["b"], params["value"]["b"]])
        x_q = x[:, queries]
        q = affine({"W": W_q, "b": b_q}, x_q).reshape(x_q.shape[0], x_q.shape[1], self.num_heads, self.d_head)
        kv = affine({"W": W_kv, "b": b_kv}, x).reshape(x.shape[0], x.shape[1], 2, self.num_heads, self.d_head)
        kv = xp.transpose(kv, (2, 0, 3, 1, 4))  # (2, batch, heads, T, d_head)
        return xp.transpose(q, (0, 2, 1, 3)), kv[0], kv[1], (W_q, W_kv)

    def _merge(self, blocks: list[Array]) -> Array:
        """Blocks (batch, heads, T_i, d_head) of consecutive positions -> (batch, sum T_i, d_model)."""
        xp = B.xp()
        merged = xp.concatenate([xp.transpose(a, (0, 2, 1, 3)) for a in blocks], axis=1)
        return merged.reshape(merged.shape[0], merged.shape[1], self.d_model)

    def _query_blocks(self, n_queries: int, length: int, causal: bool) -> list[tuple[int, int, int]]:
        """(start, stop, keys) per block: query rows start..stop-1 attend to keys 0..keys-1, all
        ``length`` of them in one block, or under ``causal`` (where the query rows are the positions)
        those before stop, in blocks of ``query_block`` positions."""
        if not causal:
            return [(0, n_queries, length)]
        blocks = []
        for start in range(0, length, self.query_block):
            stop = min(start + self.query_block, length)
            blocks.append((start, stop, stop))
        return blocks

    def _allowed(self, rows: tuple[int, int, int], causal: bool, key_mask: Array | None) -> Array | None:
        """Boolean (batch or 1, 1, stop - start or 1, keys): may query t of the block attend to key
        s? None when all may."""
        xp = B.xp()
        start, stop, keys = rows
        allowed = None
        if causal:
            allowed = (xp.arange(start, stop)[:, None] >= xp.arange(keys)[None, :])[None, None]
        if key_mask is not None:
            kept = (B.value(key_mask)[:, :keys] == 1)[:, None, None, :]
            allowed = kept if allowed is None else allowed & kept
        return allowed

    def _weights(self, scores: Array, allowed: Array | None) -> tuple[Array, Array]:
        """The softmax of ``scores`` S : (batch, heads, rows, keys) over allowed keys as e * r, with
        e = exp(S + M - max(S + M)) of S's shape and r = 1 / sum(e) : (batch, heads, rows, 1).

        Masked scores get a large finite negative number added (the -inf of M), so the shift is
        the max over allowed keys and exp underflows to exactly 0 at masked keys. A row with no
        allowed key gets r = 0 (its e is finite), hence weights 0.
        """
        xp = B.xp()
        if allowed is None:
            e = xp.exp(scores - xp.max(B.value(scores), axis=-1, keepdims=True))
            return e, 1 / row_sums(e)
        dtype = B.value(scores).dtype
        masked = scores + xp.where(allowed, 0, _neg_large(dtype)).astype(dtype)
        e = xp.exp(masked - xp.max(B.value(masked), axis=-1, keepdims=True))
        return e, xp.any(allowed, axis=-1, keepdims=True) / row_sums(e)

    def forward(
        self, params: Tree, x: Array, causal: bool = False, key_mask: Array | None = None,
        queries: slice | None = None, *, check: bool = True,
    ) -> tuple[Array, Any]:
        """y : (batch, Q, d_model), the attention output at the positions ``queries`` (all T when
        None; bidirectional only), each attending to every allowed key; inputs checked unless
        ``check`` is False (for blocks that checked them already)."""
        if check:
            check_sequence(x, key_mask, params["query"]["W"], self.d_model)
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
        queries = all_positions(queries, causal)
        xp = B.xp()
        q, k, v, W = self._project(params, x, queries)  # W = (W_q, W_kv)
        blocks, heads = [], []
        for rows in self._query_blocks(q.shape[2], k.shape[2], causal):
            start, stop, keys = rows
            scores = q[:, :, start:stop] @ xp.swapaxes(k[:, :, :keys], -1, -2)  # eq. 1; q carries 1 / sqrt(d_k)
            e, r = self._weights(scores, self._allowed(rows, causal, key_mask))
            head = e @ v[:, :, :keys]
            head *= r  # softmax(S + M) V : (batch, heads, stop - start, d_head)
            heads.append(head)
            blocks.append((rows, e, r, head))
        merged = self._merge(heads)
        y = affine(params["output"], merged)
        return y, (x, W, queries, q, k, v, blocks, merged)

    def start(self, params: Tree, batch: int, length: int) -> Tree:
        """An empty key/value cache for ``step``: {"key", "value"}, each zeros (batch, heads, length,
        d_head) of the parameters' dtype; ``length`` bounds the positions ``step`` may take."""
        xp = B.xp()
        shape, dtype = (batch, self.num_heads, length, self.d_head), B.value(params["query"]["W"]).dtype
        return {"key": xp.zeros(shape, dtype), "value": xp.zeros(shape, dtype)}

    def step(self, params: Tree, kv: Tree, x_t: Array, t: int) -> tuple[Array, Tree]:
        """Causal attention of the new position t over positions 0..t (inference only, unchecked).

        Inputs: x_t : (batch, d_model), the input at position t; kv : the cache from ``start``
        after the steps 0..t-1, which hold the keys and values of those positions.
        Returns y_t : (batch, d_model), equal to ``forward(params, x, causal=True)[0][:, t]`` to
        round-off, and kv with position t's key and value written in (in place).
        """
        xp = B.xp()
        q, k_t, v_t, _ = self._project(params, x_t[:, None], slice(None))  # each (batch, heads, 1, d_head)
        kv["key"][:, :, t : t + 1], kv["value"][:, :, t : t + 1] = k_t, v_t
        k, v = kv["key"][:, :, : t + 1], kv["value"][:, :, : t + 1]
        scores = q @ xp.swapaxes(k, -1, -2)  # (batch, heads, 1, t + 1): every key is allowed
        e, r = self._weights(scores, None)
        return affine(params["output"], self._merge([(e @ v) * r])[:, 0]), kv

    def backward(self, params: Tree, cache: Any, dy: Array) -> tuple[Tree, Array]:
        """Backward through eq. 1 with P = e * r the weights and H = P V the heads: dV = P^T dH,
        dP = dH V^T, dS = P * (dP - sum_s P dP) where sum_s P dP = dH . H row by row,
        dQ = dS K / sqrt(d_k), dK = dS^T Q / sqrt(d_k); all with dH' = r dH in place of dH, which
        turns P into e, block by block of queries. dS is 0 at masked scores (e = 0) and on rows with
        no allowed key (r = 0, so dH' = 0)."""
        xp = B.xp()
        x, W, queries, q, k, v, blocks, merged = cache
        batch, n_queries, length, d = x.shape[0], q.shape[2], x.shape[1], self.d_model
        grads = {}
        grads["output"], d_merged = self.dense.backward(params["output"], merged, dy)
        d_heads = xp.transpose(d_merged.reshape(batch, n_queries, self.num_heads, self.d_head), (0, 2, 1, 3))
        dq = xp.empty(q.shape, x.dtype)
        dk, dv = xp.zeros(k.shape, x.dtype), xp.zeros(k.shape, x.dtype)  # sums over the query blocks
        for (start, stop, keys), e, r, heads in blocks:
            dh = d_heads[:, :, start:stop] * r  # dH'
            dv[:, :, :keys] += xp.swapaxes(e, -1, -2) @ dh  # P^T dH
            ds = dh @ xp.swapaxes(v[:, :, :keys], -1, -2)  # r dP
            ds -= row_sums(dh * heads)  # r (dP - dH . H)
            ds *= e  # dS
            dq[:, :, start:stop] = ds @ k[:, :, :keys]
            dk[:, :, :keys] += xp.swapaxes(ds, -1, -2) @ q[:, :, start:stop]
        d_q = xp.swapaxes(dq, 1, 2).reshape(batch * n_queries, d)  # the gradient of x[:, queries] W_q + b_q
        d_kv = xp.empty((batch, length, 2, self.num_heads, self.d_head), x.dtype)
        d_kv[:, :, 0], d_kv[:, :, 1] = xp.swapaxes(dk, 1, 2), xp.swapaxes(dv, 1, 2)
        d_kv = d_kv.reshape(batch * length, 2 * d)  # [dK dV], the gradient of x W_kv + b_kv
        x_q = x[:, queries].reshape(batch * n_queries, d)
        dW = xp.concatenate([x_q.T @ d_q, x.reshape(batch * length, d).T @ d_kv], axis=1)
        db = xp.concatenate([column_sums(d_q), column_sums(d_kv)])
        for i, (name, c) in enumerate(zip(PROJECTIONS, self.scales)):
            cols = slice(i * d, (i + 1) * d)
            grads[name] = {"W": dW[:, cols] * c, "b": db[cols] * c}
        W_q, W_kv = W
        dx = (d_kv @ W_kv.T).reshape(x.shape)
        dx[:, queries] += (d_q @ W_q.T).reshape(batch, n_queries, d)
        return {name: grads[name] for name in (*PROJECTIONS, "output")}, dx
