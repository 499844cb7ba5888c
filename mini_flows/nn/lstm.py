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

Speed. x_t W_x + b is computed for all steps in one matmul; each step then costs one matmul
h_{t-1} W_h and one exp over all four gates, sigma(z) = 1 / (1 + exp(-z)) for i, f, o and
tanh(z) = 2 sigma(2z) - 1 for g (exp is several times cheaper than tanh in NumPy). The backward
pass loops over time with one matmul per step and sums the weight gradients over all steps with
one matmul each.

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
from mini_flows.nn import init
from mini_flows.nn.activations import exp_cap, sigmoid
from mini_flows.nn.layers import column_sums
from mini_flows.nn.tree import Tree


def _layer_init(rng: Any, n_in: int, H: int, dtype: Any) -> Tree:
    """W_x : (n_in, 4H), W_h : (H, 4H) uniform in +-1/sqrt(H); b : (4H,) zero but 1 for the forget gate."""
    k = 1.0 / math.sqrt(H)
    return {
        "W_x": init.uniform(rng, k, (n_in, 4 * H), dtype),
        "W_h": init.uniform(rng, k, (H, 4 * H), dtype),
        "b": B.asarray([0.0] * H + [1.0] * H + [0.0] * (2 * H), dtype),
    }


def _layer_forward(
    p: Tree, x: Array, keep: Array | None, lengths: Array, h: Array, c: Array
) -> tuple[Array, Array, Array, Any]:
    """One direction of one layer over all steps, eqs. (1)-(3).

    x : (batch, T, D); keep : (batch, T, 1) bool, True at real steps, or None (all real);
    lengths : (batch,) ints, the real lengths; h, c : (batch, H) initial state.
    Returns y : (batch, T, H), the final state h, c : (batch, H), and the cache.

    Right padding lets the recursion run over padded steps too, on zeroed inputs: no real step
    depends on them, y is set to 0 there and the final state is read at each sequence's length.
    """
    xp = B.xp()
    batch, T, D = x.shape
    H = h.shape[-1]
    if keep is not None:
        x = xp.where(keep, x, 0)
    # One exp serves all four gates: sigma(z) = 1 / (1 + exp(-z)) and tanh(z) = 2 sigma(2z) - 1, so the
    # columns are scaled by -1 (i, f, o) and -2 (g), and exp's argument is capped where it would overflow
    # (sigma there is below the dtype's smallest normal number either way).
    s = B.asarray([-1.0] * (2 * H) + [-2.0] * H + [-1.0] * H, x.dtype)
    W_x, W_h, b = p["W_x"] * s, p["W_h"] * s, p["b"] * s
    x2 = xp.reshape(xp.swapaxes(x, 0, 1), (T * batch, D))  # time-major rows: each step is contiguous
    zx = xp.reshape(x2 @ W_x + b, (T, batch, 4 * H))
    cap = exp_cap(zx)
    hs, cs, sigmas, tcs = [h], [c], [], []
    for t in range(T):
        e = xp.exp(xp.minimum(zx[t] + h @ W_h, cap))
        e += 1  # in place on a fresh array; on an autograd box, += makes a new box and overwrites nothing
        sigma = 1 / e  # sigma(z_i, z_f, 2 z_g, z_o)
        i, f, o = sigma[:, :H], sigma[:, H : 2 * H], sigma[:, 3 * H :]  # (1)
        g = 2 * sigma[:, 2 * H : 3 * H] - 1
        c = f * c + i * g  # (2)
        tc = xp.tanh(c)
        h = o * tc  # (3)
        hs.append(h)
        cs.append(c)
        sigmas.append(sigma)
        tcs.append(tc)
    hs, cs, sigmas, tcs = (xp.stack(v) for v in (hs, cs, sigmas, tcs))  # (T + 1, batch, H) and (T, batch, .)
    y = xp.swapaxes(hs[1:], 0, 1)
    if keep is not None:
        y = xp.where(keep, y, 0)
    rows = xp.arange(batch)
    return y, hs[lengths, rows], cs[lengths, rows], (x2, keep, lengths, hs, cs, sigmas, tcs)


def _layer_backward(
    p: Tree, cache: Any, dy: Array, d_final: tuple[Array, Array] | None
) -> tuple[Tree, Array, Array, Array]:
    """Backpropagation through time for ``_layer_forward``.

    dy : (batch, T, H) gradient of the outputs; d_final : (dh_n, dc_n), each (batch, H), gradient of
    the final state, or None for zero. Returns the parameter gradients, dx : (batch, T, D) and the
    gradient of the initial state (dh_0, dc_0).

    With dh_t and dc_t the gradients reaching h_t and c_t, the pre-activations z = (z_i, z_f, z_g, z_o)
    of (1) get dz_t = (dc_t g i', dc_t c_{t-1} f', dc_t i g', dh_t tanh(c_t) o'), where i' = i (1 - i)
    and g' = 1 - g^2. Padded steps get no gradient: their outputs are 0 and the final state's
    gradient enters at each sequence's length.
    """
    xp = B.xp()
    x2, keep, lengths, hs, cs, sigmas, tcs = cache
    T, batch, H = tcs.shape
    sigma = sigmas.reshape(T, batch, 4, H)
    i, f, o = sigma[:, :, 0], sigma[:, :, 1], sigma[:, :, 3]
    g = 2 * sigma[:, :, 2] - 1
    P = sigma * (1 - sigma)  # becomes dz_t / (dc_t, dc_t, dc_t, dh_t)
    P[:, :, 0] *= g
    P[:, :, 1] *= cs[:-1]
    P[:, :, 2] = i * (1 - g * g)
    P[:, :, 3] *= tcs
    dh_dc = o * (1 - tcs * tcs)  # d h_t / d c_t through (3)
    if keep is not None:
        dy = xp.where(keep, dy, 0)
    dy = xp.swapaxes(dy, 0, 1)
    dh = dc = xp.zeros((batch, H), dy.dtype)
    d_hs = d_cs = None  # gradients reaching h_t, c_t from outside the recursion: d_final, at step L_b
    if d_final is not None:
        d_hs, d_cs = xp.zeros_like(hs), xp.zeros_like(cs)
        rows = xp.arange(batch)
        d_hs[lengths, rows], d_cs[lengths, rows] = d_final
        dh, dc = d_hs[T], d_cs[T]
    dz = xp.empty_like(P)
    W_hT = p["W_h"].T
    for t in reversed(range(T)):
        dh = dh + dy[t]
        dc = dc + dh * dh_dc[t]
        xp.multiply(P[t, :, :3], dc[:, None, :], out=dz[t, :, :3])
        xp.multiply(P[t, :, 3], dh, out=dz[t, :, 3])
        dh = dz[t].reshape(batch, 4 * H) @ W_hT
        dc = dc * f[t]
        if d_final is not None:
            dh, dc = dh + d_hs[t], dc + d_cs[t]
    dz2 = dz.reshape(T * batch, 4 * H)
    grads = {"W_x": x2.T @ dz2, "W_h": hs[:-1].reshape(T * batch, H).T @ dz2, "b": column_sums(dz2)}
    dx = xp.swapaxes((dz2 @ p["W_x"].T).reshape(T, batch, -1), 0, 1)
    return grads, dx, dh, dc


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


def _mask(mask: Array | None, batch: int, T: int) -> tuple[Array | None, Array]:
    """Check a (batch, T) mask of 0/1 with right padding; return it as a (batch, T, 1) bool array
    (None when no mask is given) and the real lengths : (batch,) ints, on the backend."""
    xp = B.xp()
    if mask is None:
        return None, xp.full((batch,), T)
    check_mask("mask", mask, (batch, T))
    keep = B.asarray(B.value(mask)) != 0
    if bool((keep[:, 1:] > keep[:, :-1]).any()):
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
        self, params: Tree, x: Array, mask: Array | None = None, initial_state: tuple[Array, Array] | None = None
    ) -> tuple[tuple[Array, tuple[Array, Array]], Any]:
        xp = B.xp()
        batch, T = _check_x(x, self.input_size, like=params["layer0"]["W_x"])
        keep, lengths = _mask(mask, batch, T)
        state_shape = (self.num_layers, batch, self.hidden_size)
        if initial_state is None:
            h0 = c0 = xp.zeros(state_shape, B.value(x).dtype)
        else:
            h0, c0 = _pair("initial_state", initial_state)
            for name, a in (("h0", h0), ("c0", c0)):
                check_float(f"initial_state {name}", a, like=x)
                check_shape(f"initial_state {name}", a, state_shape)
        y, h_n, c_n, caches = x, [], [], []
        for l in range(self.num_layers):
            y, h, c, cache = _layer_forward(params[f"layer{l}"], y, keep, lengths, h0[l], c0[l])
            h_n.append(h)
            c_n.append(c)
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
        self, params: Tree, cache: Any, d_outputs: Array, d_final: tuple[Array, Array] | None = None
    ) -> tuple[Tree, Array, tuple[Array, Array]]:
        """Gradients for ``forward``: d_outputs : (batch, T, hidden_size); d_final : (dh_n, dc_n), each
        (num_layers, batch, hidden_size), or None for zero. Returns (grads, dx, (dh0, dc0))."""
        xp = B.xp()
        T, batch = cache[0][-1].shape[:2]
        check_shape("d_outputs", d_outputs, (batch, T, self.hidden_size))
        if d_final is not None:
            for name, a in zip(("dh_n", "dc_n"), _pair("d_final", d_final)):
                check_shape(f"d_final {name}", a, (self.num_layers, batch, self.hidden_size))
        grads, dh0, dc0 = {}, [], []
        d = d_outputs
        for l in reversed(range(self.num_layers)):
            d_final_l = None if d_final is None else (d_final[0][l], d_final[1][l])
            grads[f"layer{l}"], d, dh, dc = _layer_backward(params[f"layer{l}"], cache[l], d, d_final_l)
            dh0.append(dh)
            dc0.append(dc)
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
        # rev[b, t] = L_b - 1 - t for t < L_b, else t: reverses each row within its length, and is its own inverse.
        L, steps = lengths[:, None], xp.arange(T)[None, :]
        rev = xp.where(steps < L, L - 1 - steps, steps)
        rows = xp.arange(batch)[:, None]
        zeros = xp.zeros((batch, self.hidden_size), B.value(x).dtype)
        y, caches = x, []
        for l in range(self.num_layers):
            p = params[f"layer{l}"]
            y_fwd, _, _, cache_fwd = _layer_forward(p["fwd"], y, keep, lengths, zeros, zeros)
            y_bwd, _, _, cache_bwd = _layer_forward(p["bwd"], y[rows, rev], keep, lengths, zeros, zeros)
            y = xp.concatenate([y_fwd, y_bwd[rows, rev]], axis=-1)
            caches.append((cache_fwd, cache_bwd))
        return y, (caches, rows, rev)

    def backward(self, params: Tree, cache: Any, d_outputs: Array) -> tuple[Tree, Array]:
        """Gradients for ``forward``: d_outputs : (batch, T, 2 hidden_size). Returns (grads, dx)."""
        caches, rows, rev = cache
        H = self.hidden_size
        T, batch = caches[0][0][-1].shape[:2]
        check_shape("d_outputs", d_outputs, (batch, T, 2 * H))
        grads: Tree = {}
        d = d_outputs
        for l in reversed(range(self.num_layers)):
            cache_fwd, cache_bwd = caches[l]
            p = params[f"layer{l}"]
            g_fwd, dx_fwd, _, _ = _layer_backward(p["fwd"], cache_fwd, d[..., :H], None)
            g_bwd, dx_bwd, _, _ = _layer_backward(p["bwd"], cache_bwd, d[..., H:][rows, rev], None)
            grads[f"layer{l}"] = {"fwd": g_fwd, "bwd": g_bwd}
            d = dx_fwd + dx_bwd[rows, rev]
        return {key: grads[key] for key in params}, d
