"""The BiLSTM's two directions run as one stacked recursion: each must equal an LSTM of its own,
the backward one on each row reversed within its length; the gradient of only the input's first
columns is exactly theirs of the whole, and an LSTM run without checks is the one with them; on every
backend (no autograd here)."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.nn.lstm import LSTM, BiLSTM
from mini_flows.nn.tree import flatten


def _reversed_rows(a, lengths):
    """a : (batch, T, ...) with each row's first L_b steps reversed; the padding stays in place."""
    out = a.copy()
    for b, L in enumerate(lengths):
        out[b, :L] = a[b, :L][::-1]
    return out


@pytest.mark.parametrize("lengths", [None, [5, 2, 0], [1, 5, 3]])
@pytest.mark.parametrize("layers", [1, 2])
def test_each_bilstm_direction_equals_an_lstm_of_its_own(lengths, layers):
    batch, T, D, H = 3, 5, 4, 3
    rng = np.random.default_rng(0)
    bilstm = BiLSTM(D, H, num_layers=layers)
    params = bilstm.init(B.host_rng(1))
    x, dy = rng.standard_normal((batch, T, D)), rng.standard_normal((batch, T, 2 * H))
    mask = None if lengths is None else (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(float)
    rows = [T] * batch if lengths is None else lengths
    y, cache = bilstm.forward(params, B.asarray(x), None if mask is None else B.asarray(mask))
    grads, dx = bilstm.backward(params, cache, B.asarray(dy))

    # The same layers, one direction at a time: layer l's input is the previous layer's output
    inp, runs = x, []
    for l in range(layers):
        p = params[f"layer{l}"]
        lstm = LSTM(inp.shape[-1], H)
        on = {"fwd": B.asarray(inp), "bwd": B.asarray(_reversed_rows(inp, rows))}
        outs, caches = {}, {}
        for side in ("fwd", "bwd"):
            m = None if mask is None else B.asarray(mask)
            (out, _), caches[side] = lstm.forward({"layer0": p[side]}, on[side], m)
            outs[side] = B.to_numpy(out)
        inp = np.concatenate([outs["fwd"], _reversed_rows(outs["bwd"], rows)], axis=-1)
        runs.append((p, lstm, caches))
    np.testing.assert_allclose(B.to_numpy(y), inp, rtol=1e-12, atol=1e-14)

    d = dy
    for l in reversed(range(layers)):
        p, lstm, caches = runs[l]
        g_fwd, dx_fwd, _ = lstm.backward({"layer0": p["fwd"]}, caches["fwd"], B.asarray(d[..., :H]))
        d_bwd = B.asarray(_reversed_rows(d[..., H:], rows))
        g_bwd, dx_bwd, _ = lstm.backward({"layer0": p["bwd"]}, caches["bwd"], d_bwd)
        for side, g in (("fwd", g_fwd), ("bwd", g_bwd)):
            for key, a in flatten(g["layer0"]).items():
                np.testing.assert_allclose(B.to_numpy(grads[f"layer{l}"][side][key]), B.to_numpy(a), rtol=1e-12,
                                           atol=1e-14)
        d = B.to_numpy(dx_fwd) + _reversed_rows(B.to_numpy(dx_bwd), rows)
    np.testing.assert_allclose(B.to_numpy(dx), d, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch, T, D, H, layers, columns",
                         [(3, 5, 4, 3, 1, 1), (3, 5, 9, 3, 2, 4), (8, 12, 30, 16, 1, 5), (32, 54, 112, 32, 1, 4)])
def test_input_columns_gives_exactly_the_first_columns_of_dx(dtype, batch, T, D, H, layers, columns):
    rng = np.random.default_rng(0)
    bilstm = BiLSTM(D, H, num_layers=layers)
    params = bilstm.init(B.host_rng(1), dtype)
    lengths = rng.integers(1, T + 1, batch)
    mask = B.asarray((np.arange(T)[None, :] < lengths[:, None]).astype(dtype))
    x, dy = (B.asarray(rng.standard_normal(shape).astype(dtype)) for shape in ((batch, T, D), (batch, T, 2 * H)))
    _, cache = bilstm.forward(params, x, mask)
    grads, dx = bilstm.backward(params, cache, dy)
    grads_part, dx_part = bilstm.backward(params, cache, dy, input_columns=columns)
    assert dx_part.shape == (batch, T, columns)
    np.testing.assert_array_equal(B.to_numpy(dx_part), B.to_numpy(dx[..., :columns]))
    for key, a in flatten(grads).items():
        np.testing.assert_array_equal(B.to_numpy(flatten(grads_part)[key]), B.to_numpy(a))


def test_input_columns_must_be_within_the_input():
    bilstm = BiLSTM(3, 2)
    params = bilstm.init(B.host_rng(0))
    _, cache = bilstm.forward(params, B.asarray(np.ones((1, 2, 3))))
    for bad, match in ((4, "input_columns must be at most input_size 3"), (0, "input_columns must be an integer >= 1")):
        with pytest.raises(ValueError, match=match):
            bilstm.backward(params, cache, B.asarray(np.ones((1, 2, 4))), input_columns=bad)


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_without_checks_runs_the_same_arithmetic(layers):
    """check=False, as the IAF prior's loop over time calls it one step at a time, skips only checks."""
    batch, T, D, H = 4, 3, 5, 6
    rng = np.random.default_rng(3)
    lstm = LSTM(D, H, num_layers=layers)
    params = lstm.init(B.host_rng(2), "float32")
    x, dy = (B.asarray(rng.standard_normal(shape).astype(np.float32)) for shape in ((batch, T, D), (batch, T, H)))
    state = tuple(B.asarray(rng.standard_normal((layers, batch, H)).astype(np.float32)) for _ in "hc")
    mask = B.asarray((np.arange(T)[None, :] < np.array([3, 1, 2, 3])[:, None]).astype(np.float32))
    results = []
    for check in (True, False):
        (out, (h, c)), cache = lstm.forward(params, x, mask, state, check=check)
        grads, dx, (dh0, dc0) = lstm.backward(params, cache, dy, state, check=check)
        results.append(flatten({"out": out, "h": h, "c": c, "grads": grads, "dx": dx, "dh0": dh0, "dc0": dc0}))
    checked, unchecked = results
    for key in checked:
        np.testing.assert_array_equal(B.to_numpy(unchecked[key]), B.to_numpy(checked[key]))
