"""LSTM and bidirectional LSTM, with backpropagation through time written by hand.

Hochreiter and Schmidhuber, "Long Short-Term Memory" (1997), with the forget gate of Gers,
Schmidhuber and Cummins, "Learning to Forget" (2000). One layer reads x_t and its previous state
(h_{t-1}, c_{t-1}) and computes, with the gates stacked in the order i, f, g, o along the 4H axis,

    [i, f, g, o] = [sigma, sigma, tanh, sigma](x_t W_x + h_{t-1} W_h + b)     (1)
    c_t = f * c_{t-1} + i * g                                                 (2)
    h_t = o * tanh(c_t)                                                       (3)

Padded batches. A mask m of shape (batch, T) holds 1 at real steps and 0 after a sequence ends
(right padding only). At a padded step the state carries over, (h_t, c_t) = (h_{t-1}, c_{t-1}), and
the output is 0, so the final state is the one after each sequence's last real step.

Both classes run ``nn.lstm_recursion``: an LSTM layer is its one-direction case, a BiLSTM layer its
two-direction case, with both directions in every product and elementwise operation.

Example
-------
>>> lstm = LSTM(3, 4, num_layers=2)
>>> params = lstm.init(B.host_rng(0))
>>> x = B.asarray(B.host_rng(1).standard_normal((2, 5, 3)))
>>> (out, (h_n, c_n)), cache = lstm.forward(params, x, mask=B.asarray([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]))
>>> grads, dx, (dh0, dc0) = lstm.backward(params, cache, B.xp().ones_like(out))
>>> out.shape, h_n.shape, grads["layer1"]["W_h"].shape
((2, 5, 4), (2, 2, 4), (4, 16))
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_mask, check_positive_int, check_shape
from mini_flows.nn import init, lstm_recursion
from mini_flows.nn.activations import sigmoid
from mini_flows.nn.tree import Tree


def _layer_init(rng: Any, n_in: int, H: int, dtype: Any) -> Tree:
    """W_x : (n_in, 4H), W_h : (H, 4H) uniform in +-1/sqrt(H); b : (4H,) zero but 1 for the forget gate."""
    k = 1.0 / math.sqrt(H)
    return {
        "W_x": init.uniform(rng, k, (n_in, 4 * H), dtype),
        "W_h": init.uniform(rng, k, (H, 4 * H), dtype),
        "b": B.asarray([0.0] * H + [1.0] * H + [0.0] * (2 * H), dtype),
    }


def _directions(params: list[Tree]) -> tuple[Array, Array, Array]:
    """W_x : (K, D, 4H), W_h : (K, H, 4H), b : (K, 4H) from the K directions' parameter trees (for
    one direction, views: no copies on the one-step calls of a loop over time)."""
    if len(params) == 1:
        return params[0]["W_x"][None], params[0]["W_h"][None], params[0]["b"][None]
    W_x, W_h, b = (B.xp().stack([p[name] for p in params]) for name in ("W_x", "W_h", "b"))
    return W_x, W_h, b


def _direction_grads(grads: tuple[Array, Array, Array], k: int) -> Tree:
    dW_x, dW_h, db = grads
    return {"W_x": dW_x[k], "W_h": dW_h[k], "b": db[k]}


def _orders(lengths: Array, T: int, both_ways: bool) -> Array:
    """The time position each direction reads at each step, (K, T, batch): forward in time, and with
    ``both_ways`` also backward from each row's last real step (L_b - 1 - t for t < L_b, else t:
    a reversal within the length, its own inverse, that leaves the padding where it is)."""
    xp = B.xp()
    steps, L = xp.arange(T)[:, None], lengths[None, :]
    forward = xp.broadcast_to(steps, (T, lengths.shape[0]))
    if not both_ways:
        return forward[None]
    return xp.stack([forward, xp.where(steps < L, L - 1 - steps, steps)])


def _check_x(x: Array, input_size: int, like: Array) -> tuple[int, int]:
    check_float("x", x, like=like)
    check_shape("x", x, (None, None, input_size))
    batch, T = B.value(x).shape[:2]
    if T < 1:
        raise ValueError(f"x must have at least one time step, got shape {tuple(B.value(x).shape)}")
    return batch, T


def _pair(name: str, pair: Any) -> tuple[Array, Array]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair of arrays (h, c), got {type(pair).__name__}")
    return pair[0], pair[1]


def _mask(mask: Array | None, batch: int, T: int, check: bool = True) -> tuple[Array | None, Array]:
    """Check (where ``check``) a (batch, T) mask of 0/1 with right padding; return it as a (batch, T, 1)
    bool array (None when no mask is given) and the real lengths : (batch,) ints, on the backend."""
    xp = B.xp()
    if mask is None:
        return None, xp.full((batch,), T)
    if check:
        check_mask("mask", mask, (batch, T))
    keep = B.asarray(B.value(mask)) != 0
    if check and bool((keep[:, 1:] > keep[:, :-1]).any()):
        raise ValueError("mask must be right-padded: once a row holds 0, the rest of that row must be 0")
    return keep[:, :, None], keep.sum(axis=1)


class _Sizes:
    """input_size, hidden_size and num_layers, checked: what both LSTMs are built from."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1):
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        check_positive_int("num_layers", num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers


class LSTM(_Sizes):
    """Multi-layer unidirectional LSTM, eqs. (1)-(3) in the module docstring; layer l > 0 reads the
    outputs of layer l - 1.

    Parameters: ``params["layer{l}"]`` = {W_x : (D_l, 4H), W_h : (H, 4H), b : (4H,)}, with
    D_0 = input_size and D_l = hidden_size after; gates stacked as i, f, g, o.

    Inputs: x : (batch, T, input_size); mask : (batch, T) of 0/1 (1 = real step, right padding
    only) or None; initial_state : (h0, c0), each (num_layers, batch, hidden_size), or None for zeros.
    Returns ((outputs, (h_n, c_n)), cache) with outputs : (batch, T, hidden_size) of the top layer
    (0 at padded steps) and h_n, c_n : (num_layers, batch, hidden_size), the state after each
    sequence's last real step (the initial state for an empty sequence, a row of zeros).
    """

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        sizes = [self.input_size] + [self.hidden_size] * (self.num_layers - 1)
        return {f"layer{l}": _layer_init(rng, n_in, self.hidden_size, dtype) for l, n_in in enumerate(sizes)}

    def forward(
        self, params: Tree, x: Array, mask: Array | None = None, initial_state: tuple[Array, Array] | None = None,
        *, check: bool = True,
    ) -> tuple[tuple[Array, tuple[Array, Array]], Any]:
        """``check`` False skips the checks of x, mask and initial_state: for a caller that built them
        itself, as a loop over time calling this one step at a time does."""
        xp = B.xp()
        if check:
            batch, T = _check_x(x, self.input_size, like=params["layer0"]["W_x"])
        else:
            batch, T = B.value(x).shape[:2]
        keep, lengths = _mask(mask, batch, T, check)
        state_shape = (self.num_layers, batch, self.hidden_size)
        if initial_state is None:
            h0 = c0 = xp.zeros(state_shape, B.value(x).dtype)
        elif check:
            h0, c0 = _pair("initial_state", initial_state)
            for name, a in (("h0", h0), ("c0", c0)):
                check_float(f"initial_state {name}", a, like=x)
                check_shape(f"initial_state {name}", a, state_shape)
        else:
            h0, c0 = initial_state
        order = _orders(lengths, T, both_ways=False)
        y, h_n, c_n, caches = x, [], [], []
        for l in range(self.num_layers):
            weights = _directions([params[f"layer{l}"]])
            y, h, c, cache = lstm_recursion.forward(*weights, y, keep, lengths, order, h0[l][None], c0[l][None])
            h_n.append(h[0])
            c_n.append(c[0])
            caches.append(cache)
        return (y, (xp.stack(h_n), xp.stack(c_n))), caches

    def step(self, params: Tree, x_t: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
        """One time step through every layer, eqs. (1)-(3), for incremental generation (no cache,
        no gradient): x_t : (batch, input_size); state (h, c), each (num_layers, batch, hidden_size).
        Returns the new state (h, c); the top layer's output is h[-1]."""
        xp = B.xp()
        H = self.hidden_size
        h_new, c_new, inp = [], [], x_t
        for l in range(self.num_layers):
            p = params[f"layer{l}"]
            z = inp @ p["W_x"] + state[0][l] @ p["W_h"] + p["b"]
            i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H : 2 * H]), sigmoid(z[:, 3 * H :])
            c = f * state[1][l] + i * xp.tanh(z[:, 2 * H : 3 * H])  # (2)
            inp = o * xp.tanh(c)  # (3)
            h_new.append(inp)
            c_new.append(c)
        return xp.stack(h_new), xp.stack(c_new)

    def backward(
        self, params: Tree, cache: Any, d_outputs: Array, d_final: tuple[Array, Array] | None = None,
        *, check: bool = True,
    ) -> tuple[Tree, Array, tuple[Array, Array]]:
        """Gradients for ``forward``: d_outputs : (batch, T, hidden_size); d_final : (dh_n, dc_n), each
        (num_layers, batch, hidden_size), or None for zero. Returns (grads, dx, (dh0, dc0)). ``check``
        False skips the checks of d_outputs and d_final (built by the caller)."""
        xp = B.xp()
        T, batch = cache[0][-1].shape[1:3]
        if check:
            check_shape("d_outputs", d_outputs, (batch, T, self.hidden_size))
        if check and d_final is not None:
            for name, a in zip(("dh_n", "dc_n"), _pair("d_final", d_final)):
                check_shape(f"d_final {name}", a, (self.num_layers, batch, self.hidden_size))
        grads, dh0, dc0 = {}, [], []
        d = d_outputs
        for l in reversed(range(self.num_layers)):
            d_final_l = None if d_final is None else (d_final[0][l][None], d_final[1][l][None])
            W_x, W_h, _ = _directions([params[f"layer{l}"]])
            layer_grads, d, dh, dc = lstm_recursion.backward(W_x, W_h, cache[l], d, d_final_l)
            grads[f"layer{l}"] = _direction_grads(layer_grads, 0)
            dh0.append(dh[0])
            dc0.append(dc[0])
        grads = {key: grads[key] for key in params}
        return grads, d, (xp.stack(dh0[::-1]), xp.stack(dc0[::-1]))


class BiLSTM(_Sizes):
    """Multi-layer bidirectional LSTM.

    Each layer runs one LSTM forward in time and another backward in time, starting at each
    sequence's last real step: the backward direction reads x_{L-1}, ..., x_0 for a sequence of
    length L (a per-row reversal within the real length, undone on its outputs). The layer's output
    is [forward, backward] along the last axis, 0 at padded steps, and feeds the next layer.

    Parameters: ``params["layer{l}"]["fwd"]`` and ``["bwd"]``, each {W_x : (D_l, 4H), W_h : (H, 4H),
    b : (4H,)}, with D_0 = input_size and D_l = 2 hidden_size after.

    Inputs: x : (batch, T, input_size); mask : (batch, T) of 0/1 (right padding only) or None.
    Returns (outputs, cache) with outputs : (batch, T, 2 hidden_size).
    """

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        H = self.hidden_size
        sizes = [self.input_size] + [2 * H] * (self.num_layers - 1)
        return {
            f"layer{l}": {"fwd": _layer_init(rng, n_in, H, dtype), "bwd": _layer_init(rng, n_in, H, dtype)}
            for l, n_in in enumerate(sizes)
        }

    def forward(self, params: Tree, x: Array, mask: Array | None = None) -> tuple[Array, Any]:
        xp = B.xp()
        batch, T = _check_x(x, self.input_size, like=params["layer0"]["fwd"]["W_x"])
        keep, lengths = _mask(mask, batch, T)
        order = _orders(lengths, T, both_ways=True)
        zeros = xp.zeros((2, batch, self.hidden_size), B.value(x).dtype)
        y, caches = x, []
        for l in range(self.num_layers):
            p = params[f"layer{l}"]
            y, _, _, cache = lstm_recursion.forward(*_directions([p["fwd"], p["bwd"]]), y, keep, lengths, order,
                                                    zeros, zeros)
            caches.append(cache)
        return y, caches

    def backward(self, params: Tree, cache: Any, d_outputs: Array, *,
                 input_columns: int | None = None) -> tuple[Tree, Array]:
        """Gradients for ``forward``: d_outputs : (batch, T, 2 hidden_size). Returns (grads, dx), dx :
        (batch, T, input_size), or (batch, T, input_columns): the gradient of x's first ``input_columns``
        columns only, where the rest (a constant such as a length encoding) needs none."""
        H = self.hidden_size
        T, batch = cache[0][-1].shape[1:3]
        check_shape("d_outputs", d_outputs, (batch, T, 2 * H))
        if input_columns is not None:
            check_positive_int("input_columns", input_columns)
            if input_columns > self.input_size:
                raise ValueError(f"input_columns must be at most input_size {self.input_size}, got {input_columns}")
        grads: Tree = {}
        d = d_outputs
        for l in reversed(range(self.num_layers)):
            p = params[f"layer{l}"]
            W_x, W_h, _ = _directions([p["fwd"], p["bwd"]])
            layer_grads, d, _, _ = lstm_recursion.backward(W_x, W_h, cache[l], d, None,
                                                           input_columns if l == 0 else None)
            grads[f"layer{l}"] = {"fwd": _direction_grads(layer_grads, 0), "bwd": _direction_grads(layer_grads, 1)}
        return {key: grads[key] for key in params}, d
