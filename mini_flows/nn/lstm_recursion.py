"""The LSTM recursion over time, forward and backward, for K directions at once.

One layer of ``nn.lstm.LSTM`` is K = 1 direction, one layer of ``nn.lstm.BiLSTM`` K = 2 (forward in
time, and backward from each sequence's last real step). Every array carries the directions on a
leading axis: the weights W_x : (K, D, 4H), W_h : (K, H, 4H), b : (K, 4H), the states (K, batch, H);
each time step is one batched product h_{t-1} W_h, (K, batch, H) @ (K, H, 4H), and one set of
elementwise operations for all directions, eqs. (1)-(3) of ``nn.lstm``.

Which input each direction reads at its step s is ``order`` : (K, T, batch), the time position
(row b reads x[b, order[k, s, b]]); each order[k, :, b] must be its own inverse (the identity, or
a reversal within the real length that leaves the padding in place), so that the same array also
puts the outputs back at their positions. Steps past a row's length run on zeroed inputs, their
outputs are set to 0, and the final state is read at each row's length.

Speed. x W_x + b is one product for all steps ([x, 1] times W_x with b as its last row); each step
then costs the product h_{t-1} W_h and one tanh over all four gates, followed by one affine map:
sigma(z) = 1/2 + tanh(z / 2) / 2 for i, f, o (the 1/2 inside is folded into their weight columns,
exactly: a power of two) and g = tanh(z), so the gates are a = tanh(z * half) * half + shift with
half = 1/2 on i, f, o and 1 on g, shift = 1/2 on i, f, o and 0 on g. tanh never overflows, so no
argument needs capping. (Measured with NumPy 2.4 on AVX-512, (32, 256) gates: tanh 2.5 us against
exp 3.2 us in float32, 9.6 us against 5.0 us in float64; with the minimum, + 1 and reciprocal the
exp trick needs, tanh and its affine map are 4.9 us against 8.2 us in float32 and about even,
13 against 14 us, in float64.) Without autograd, each step computes its gates, states and
tanh(c_t) into arrays preallocated for all steps (``_Steps``); under ``B.use_autograd()``, which
traces no writes into arrays, the same code makes new arrays, collected and stacked at the end.
The backward pass loops over time with one product per step, and the weight gradients are one
product each over all steps.
"""

from __future__ import annotations

from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.backend import Array


def _into(function: Callable[..., Array], *args: Array, out: Array | None) -> Array:
    """``function(*args)`` written into ``out``, or a new array where ``out`` is None (when tracing)."""
    return function(*args) if out is None else function(*args, out=out)


class _Steps:
    """The per-step values of one quantity, (K, steps, batch, width): computed into one preallocated
    array (``out(s)`` is its step s), or, when tracing, collected (``out(s)`` is None) and stacked.
    ``first``, where given, is step 0 and ``out(s)`` step s + 1."""

    def __init__(self, traced: bool, shape: tuple[int, ...], dtype: Any, first: Array | None = None):
        self.buffer = None if traced else B.xp().empty(shape, dtype)
        self.items: list[Array] = []
        self.offset = int(first is not None)
        if first is not None:
            if self.buffer is None:
                self.items.append(first)
            else:
                self.buffer[:, 0] = first

    def out(self, s: int) -> Array | None:
        return None if self.buffer is None else self.buffer[:, s + self.offset]

    def keep(self, a: Array) -> None:
        """Record a step's value: when tracing; otherwise it was computed into ``out`` already."""
        if self.buffer is None:
            self.items.append(a)

    def stacked(self) -> Array:
        return self.buffer if self.buffer is not None else B.xp().stack(self.items, axis=1)


def _at_positions(order: Array, first: int) -> tuple[Array, Array, Array]:
    """Indices into (K, steps, batch, ...) that gather, as (batch, T, K, ...), each direction's value
    at each time position: its step ``first`` + order[k, t, b] (order is its own inverse)."""
    xp = B.xp()
    K, _, batch = order.shape
    return xp.arange(K), xp.transpose(order, (2, 1, 0)) + first, xp.arange(batch)[:, None, None]


def _gate_columns(H: int, dtype: Any, values: tuple[float, float, float, float]) -> Array:
    """(4H,): values[0] on the H columns of i, values[1] on f, values[2] on g, values[3] on o."""
    return B.xp().repeat(B.asarray(values, dtype), H)


def forward(
    W_x: Array, W_h: Array, b: Array, x: Array, keep: Array | None, lengths: Array, order: Array,
    h: Array, c: Array,
) -> tuple[Array, Array, Array, Any]:
    """K directions of one layer over all steps, eqs. (1)-(3) of ``nn.lstm``.

    W_x : (K, D, 4H), W_h : (K, H, 4H), b : (K, 4H); x : (batch, T, D); keep : (batch, T, 1) bool,
    True at real steps, or None (all real); lengths : (batch,) ints; order : (K, T, batch), see the
    module docstring; h, c : (K, batch, H) initial states.
    Returns y : (batch, T, K H), the directions' outputs side by side at their time positions (0
    at padded ones), the final states h, c : (K, batch, H), and the cache for ``backward``.
    """
    xp = B.xp()
    batch, T, D = x.shape
    K, H = W_h.shape[0], W_h.shape[1]
    dtype = B.value(x).dtype
    traced = any(B.value(a) is not a for a in (W_x, W_h, b, x, h, c))
    if keep is not None:
        x = xp.where(keep, x, 0)
    rows = xp.arange(batch)
    x = xp.concatenate([x, xp.ones((batch, T, 1), dtype)], axis=-1)  # [x_t, 1]: the bias is W_x's last row
    x2 = xp.reshape(x[rows, order], (K, T * batch, D + 1))  # (K, T, batch, D + 1): each direction's steps, in order
    half = _gate_columns(H, dtype, (0.5, 0.5, 1.0, 0.5))  # tanh(z / 2) for i, f, o, then halved; tanh(z) for g
    shift = _gate_columns(H, dtype, (0.5, 0.5, 0.0, 0.5))  # sigma(z) = 1/2 + tanh(z / 2) / 2
    zx = xp.reshape(x2 @ (xp.concatenate([W_x, b[:, None, :]], axis=1) * half), (K, T, batch, 4 * H))
    W_h = W_h * half
    hs = _Steps(traced, (K, T + 1, batch, H), dtype, first=h)
    cs = _Steps(traced, (K, T + 1, batch, H), dtype, first=c)
    gates = _Steps(traced, (K, T, batch, 4 * H), dtype)
    tcs = _Steps(traced, (K, T, batch, H), dtype)
    for t in range(T):
        a_out, c_out, tc_out, h_out = gates.out(t), cs.out(t), tcs.out(t), hs.out(t)
        a = _into(xp.matmul, h, W_h, out=a_out)
        a = _into(xp.add, a, zx[:, t], out=a_out)  # not +=: a is plain at t = 0 where only x is traced
        a = _into(xp.tanh, a, out=a_out)
        a *= half
        a += shift  # (i, f, g, o) of (1)
        c = _into(xp.multiply, a[..., H : 2 * H], c, out=c_out)
        c += a[..., :H] * a[..., 2 * H : 3 * H]  # (2)
        tc = _into(xp.tanh, c, out=tc_out)
        h = _into(xp.multiply, a[..., 3 * H :], tc, out=h_out)  # (3)
        gates.keep(a)
        cs.keep(c)
        tcs.keep(tc)
        hs.keep(h)
    h_all, c_all = hs.stacked(), cs.stacked()
    y = xp.reshape(h_all[_at_positions(order, 1)], (batch, T, K * H))
    if keep is not None:
        y = xp.where(keep, y, 0)
    final = (slice(None), lengths, rows)
    cache = (x2, keep, lengths, order, h_all, c_all, gates.stacked(), tcs.stacked())
    return y, h_all[final], c_all[final], cache


def backward(
    W_x: Array, W_h: Array, cache: Any, dy: Array, d_final: tuple[Array, Array] | None, dx_columns: int | None = None
) -> tuple[tuple[Array, Array, Array], Array, Array, Array]:
    """Backpropagation through time for ``forward``.

    dy : (batch, T, K H) gradient of the outputs; d_final : (dh_n, dc_n), each (K, batch, H), gradient
    of the final states, or None for zero. Returns the gradients (dW_x, dW_h, db) of the weights'
    shapes, dx : (batch, T, D) (summed over the directions), or only its first ``dx_columns`` columns
    (batch, T, dx_columns) where given, and that of the initial states dh_0, dc_0.

    With dh_t and dc_t the gradients reaching h_t and c_t, the pre-activations z = (z_i, z_f, z_g, z_o)
    of (1) get dz_t = (dc_t g i', dc_t c_{t-1} f', dc_t i g', dh_t tanh(c_t) o'), where i' = i (1 - i)
    and g' = 1 - g^2, so that (i', f', g', o') = (1 - a) (a + [0, 0, 1, 0]) with a = (i, f, g, o).
    Padded steps get no gradient: their outputs are 0 and the final state's gradient enters at
    each sequence's length.
    """
    xp = B.xp()
    x2, keep, lengths, order, hs, cs, gates, tcs = cache
    K, T, batch, H = tcs.shape
    a = gates.reshape(K, T, batch, 4, H)  # (i, f, g, o) of (1)
    dz = 1 - gates  # becomes dz_t / (dc_t, dc_t, dc_t, dh_t), then dz_t itself, step by step
    dz *= gates + _gate_columns(H, gates.dtype, (0, 0, 1, 0))  # (i', f', g', o') = (1 - a) (a + [0, 0, 1, 0])
    dz = dz.reshape(K, T, batch, 4, H)
    dz[..., 0, :] *= a[..., 2, :]
    dz[..., 1, :] *= cs[:, :-1]
    dz[..., 2, :] *= a[..., 0, :]
    dz[..., 3, :] *= tcs
    dh_dc = tcs * tcs  # becomes d h_t / d c_t through (3)
    xp.subtract(1, dh_dc, out=dh_dc)
    dh_dc *= a[..., 3, :]
    f = a[..., 1, :]
    if keep is not None:
        dy = xp.where(keep, dy, 0)
    directions = xp.arange(K)[:, None, None]
    d_steps = dy.reshape(batch, T, K, H)[xp.arange(batch), order, directions]  # (K, T, batch, H), in step order
    dh, dc = xp.zeros((K, batch, H), dy.dtype), xp.zeros((K, batch, H), dy.dtype)
    if d_final is not None:
        d_hs, d_cs = xp.zeros_like(hs), xp.zeros_like(cs)  # gradients from outside the recursion, at step L_b
        final = (slice(None), lengths, xp.arange(batch))
        d_hs[final], d_cs[final] = d_final
        dh += d_hs[:, T]
        dc += d_cs[:, T]
    through_h = xp.empty_like(dc)
    W_hT = xp.ascontiguousarray(xp.swapaxes(W_h, 1, 2))  # contiguous: 2x faster than a transposed view per step
    for t in reversed(range(T)):
        dh += d_steps[:, t]
        dc += xp.multiply(dh, dh_dc[:, t], out=through_h)
        dz[:, t, :, :3] *= dc[:, :, None, :]
        dz[:, t, :, 3] *= dh
        xp.matmul(dz[:, t].reshape(K, batch, 4 * H), W_hT, out=dh)
        dc *= f[:, t]
        if d_final is not None:
            dh += d_hs[:, t]
            dc += d_cs[:, t]
    dz2 = dz.reshape(K, T * batch, 4 * H)
    dW_xb = xp.swapaxes(x2, 1, 2) @ dz2  # [dW_x; db]
    dW_h = xp.swapaxes(hs[:, :-1].reshape(K, T * batch, H), 1, 2) @ dz2
    # all D columns in the product, whose round-off can depend on its width; fewer in the gather and sum
    dx_steps = (dz2 @ xp.swapaxes(W_x, 1, 2)).reshape(K, T, batch, -1)[..., :dx_columns]
    dx = dx_steps[_at_positions(order, 0)].sum(axis=2)  # (batch, T, K, D) summed over the directions
    return (dW_xb[:, :-1], dW_h, dW_xb[:, -1]), dx, dh, dc
