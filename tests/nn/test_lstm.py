"""LSTM and BiLSTM: backpropagation through time equals autograd; padding never reaches a real step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.nn.lstm import LSTM, BiLSTM
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)


@st.composite
def shapes(draw, min_length=0):
    """(batch, T, input_size, hidden_size, num_layers, lengths), lengths None (no mask) or in min_length..T."""
    batch, T = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    D, H, layers = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 2))
    lengths = draw(st.none() | st.lists(st.integers(min_length, T), min_size=batch, max_size=batch))
    note(f"batch {batch}, T {T}, D {D}, H {H}, layers {layers}, lengths {lengths}")
    return batch, T, D, H, layers, lengths


def _mask(lengths, batch, T):
    if lengths is None:
        return None
    return (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _reference_lstm(p, x, h, c):
    """Eqs. (1)-(3) written out step by step for one unpadded sequence batch."""
    H = h.shape[-1]
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ p["W_x"] + h @ p["W_h"] + p["b"]
        i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H : 2 * H]), _sigmoid(z[:, 3 * H :])
        g = np.tanh(z[:, 2 * H : 3 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1), h, c


@given(seeds, shapes(), st.booleans(), st.booleans())
def test_lstm_backward_matches_autograd(seed, shape, with_initial_state, with_d_final):
    batch, T, D, H, layers, lengths = shape
    rng = B.host_rng(seed)
    lstm = LSTM(D, H, num_layers=layers)
    params = lstm.init(rng)
    x, mask = rng.standard_normal((batch, T, D)), _mask(lengths, batch, T)
    state_shape = (layers, batch, H)
    h0, c0 = (rng.standard_normal(state_shape) if with_initial_state else np.zeros(state_shape) for _ in "hc")
    d_out = rng.standard_normal((batch, T, H))
    d_final = (rng.standard_normal(state_shape), rng.standard_normal(state_shape)) if with_d_final else None

    _, cache = lstm.forward(params, x, mask, (h0, c0) if with_initial_state else None)
    hand = lstm.backward(params, cache, d_out, d_final)

    def loss(p, x, h0, c0):
        (out, (h_n, c_n)), _ = lstm.forward(p, x, mask, (h0, c0))
        total = vjp_loss(out, d_out)
        return total if d_final is None else total + vjp_loss(h_n, d_final[0]) + vjp_loss(c_n, d_final[1])

    params_grad, dx, dh0, dc0 = autograd_grads(loss, params, x, h0, c0)
    assert_grads_close(hand, (params_grad, dx, (dh0, dc0)))


@given(seeds, shapes())
def test_bilstm_backward_matches_autograd(seed, shape):
    batch, T, D, H, layers, lengths = shape
    rng = B.host_rng(seed)
    bilstm = BiLSTM(D, H, num_layers=layers)
    params = bilstm.init(rng)
    x, mask = rng.standard_normal((batch, T, D)), _mask(lengths, batch, T)
    d_out = rng.standard_normal((batch, T, 2 * H))
    _, cache = bilstm.forward(params, x, mask)
    hand = bilstm.backward(params, cache, d_out)
    auto = autograd_grads(lambda p, x: vjp_loss(bilstm.forward(p, x, mask)[0], d_out), params, x)
    assert_grads_close(hand, auto)


@given(seeds, shapes(min_length=1))
def test_padding_never_changes_real_outputs_or_final_state(seed, shape):
    batch, T, D, H, layers, lengths = shape
    lengths = lengths or [T] * batch
    rng = B.host_rng(seed)
    lstm, bilstm = LSTM(D, H, num_layers=layers), BiLSTM(D, H, num_layers=layers)
    p, bp = lstm.init(rng), bilstm.init(rng)
    x = rng.standard_normal((batch, T, D)) * 3  # the padding holds values too: they must not leak
    h0, c0 = rng.standard_normal((layers, batch, H)), rng.standard_normal((layers, batch, H))
    mask = _mask(lengths, batch, T)
    (out, (h_n, c_n)), _ = lstm.forward(p, x, mask, (h0, c0))
    bout, _ = bilstm.forward(bp, x, mask)
    close = dict(rtol=1e-12, atol=1e-14)
    for b, L in enumerate(lengths):
        (alone, (h_alone, c_alone)), _ = lstm.forward(p, x[b : b + 1, :L], None, (h0[:, b : b + 1], c0[:, b : b + 1]))
        np.testing.assert_allclose(out[b, :L], alone[0], **close)
        np.testing.assert_allclose(h_n[:, b], h_alone[:, 0], **close)
        np.testing.assert_allclose(c_n[:, b], c_alone[:, 0], **close)
        np.testing.assert_allclose(bout[b, :L], bilstm.forward(bp, x[b : b + 1, :L])[0][0], **close)
        assert not out[b, L:].any() and not bout[b, L:].any()


@given(seeds, st.integers(1, 3), st.integers(1, 5), st.integers(1, 4))
def test_forward_follows_the_lstm_equations(seed, batch, T, H):
    rng = B.host_rng(seed)
    lstm = LSTM(3, H)
    p = lstm.init(rng)
    x = rng.standard_normal((batch, T, 3))
    h0, c0 = rng.standard_normal((1, batch, H)), rng.standard_normal((1, batch, H))
    (out, (h_n, c_n)), _ = lstm.forward(p, x, initial_state=(h0, c0))
    ref_out, ref_h, ref_c = _reference_lstm(p["layer0"], x, h0[0], c0[0])
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n[0], ref_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_n[0], ref_c, rtol=1e-12, atol=1e-14)


@given(seeds, st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_bilstm_backward_direction_reads_each_sequence_from_its_last_real_step(seed, lengths):
    batch, T, H = len(lengths), max(lengths), 3
    rng = B.host_rng(seed)
    bilstm = BiLSTM(2, H)
    p = bilstm.init(rng)
    x = rng.standard_normal((batch, T, 2))
    out, _ = bilstm.forward(p, x, _mask(lengths, batch, T))
    zeros = np.zeros((batch, H))
    for b, L in enumerate(lengths):
        fwd, _, _ = _reference_lstm(p["layer0"]["fwd"], x[b : b + 1, :L], zeros[:1], zeros[:1])
        bwd, _, _ = _reference_lstm(p["layer0"]["bwd"], x[b : b + 1, :L][:, ::-1], zeros[:1], zeros[:1])
        np.testing.assert_allclose(out[b, :L, :H], fwd[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out[b, :L, H:], bwd[0, ::-1], rtol=1e-12, atol=1e-14)


def test_empty_sequence_keeps_the_initial_state_and_passes_its_gradient_through():
    rng = B.host_rng(0)
    lstm = LSTM(2, 3, num_layers=2)
    p = lstm.init(rng)
    x, h0, c0 = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    mask = _mask([4, 0], 2, 4)
    (out, (h_n, c_n)), cache = lstm.forward(p, x, mask, (h0, c0))
    np.testing.assert_array_equal(h_n[:, 1], h0[:, 1])
    np.testing.assert_array_equal(c_n[:, 1], c0[:, 1])
    assert not out[1].any()
    dh_n, dc_n = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    _, dx, (dh0, dc0) = lstm.backward(p, cache, rng.standard_normal((2, 4, 3)), (dh_n, dc_n))
    np.testing.assert_array_equal(dh0[:, 1], dh_n[:, 1])
    np.testing.assert_array_equal(dc0[:, 1], dc_n[:, 1])
    assert not dx[1].any()


def test_huge_values_in_the_padding_never_overflow_into_outputs_or_gradients():
    rng = B.host_rng(3)
    lstm, bilstm = LSTM(8, 3, num_layers=2), BiLSTM(8, 3)
    p, bp = lstm.init(rng), bilstm.init(rng)
    mask = _mask([5, 2], 2, 5)
    x = np.where(mask[:, :, None] == 1, rng.standard_normal((2, 5, 8)), 1.7e308)
    with np.errstate(all="raise"):
        (out, (h_n, c_n)), cache = lstm.forward(p, x, mask)
        grads, dx, (dh0, dc0) = lstm.backward(p, cache, np.ones((2, 5, 3)), (np.ones((2, 2, 3)), np.ones((2, 2, 3))))
        bout, bcache = bilstm.forward(bp, x, mask)
        bgrads, bdx = bilstm.backward(bp, bcache, np.ones((2, 5, 6)))
    for a in [out, h_n, c_n, dx, dh0, dc0, bout, bdx, *grads["layer0"].values(), *bgrads["layer0"]["bwd"].values()]:
        assert np.isfinite(a).all()
    assert not out[1, 2:].any() and not dx[1, 2:].any() and not bdx[1, 2:].any()


def test_a_mask_of_ones_equals_no_mask():
    rng = B.host_rng(1)
    lstm, bilstm = LSTM(2, 3, num_layers=2), BiLSTM(2, 3, num_layers=2)
    p, bp = lstm.init(rng), bilstm.init(rng)
    x, ones = rng.standard_normal((2, 4, 2)), np.ones((2, 4))
    (out, final), _ = lstm.forward(p, x)
    (out_m, final_m), _ = lstm.forward(p, x, ones)
    np.testing.assert_array_equal(out, out_m)
    np.testing.assert_array_equal(final, final_m)
    np.testing.assert_array_equal(bilstm.forward(bp, x)[0], bilstm.forward(bp, x, ones)[0])


def test_init_is_seeded_with_forget_bias_one():
    lstm = LSTM(3, 4, num_layers=2)
    p = lstm.init(B.host_rng(7))
    assert [(k, v.shape) for k, v in p["layer1"].items()] == [("W_x", (4, 16)), ("W_h", (4, 16)), ("b", (16,))]
    np.testing.assert_array_equal(p["layer0"]["b"], np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    assert np.abs(p["layer0"]["W_h"]).max() <= 0.5
    np.testing.assert_array_equal(p["layer1"]["W_x"], lstm.init(B.host_rng(7))["layer1"]["W_x"])
    bp = BiLSTM(3, 4, num_layers=2).init(B.host_rng(7))
    assert bp["layer1"]["fwd"]["W_x"].shape == (8, 16)
    assert not np.array_equal(bp["layer0"]["fwd"]["W_x"], bp["layer0"]["bwd"]["W_x"])


def test_float32_keeps_its_dtype():
    rng = B.host_rng(2)
    lstm, bilstm = LSTM(2, 3, num_layers=2), BiLSTM(2, 3, num_layers=2)
    p, bp = lstm.init(rng, dtype="float32"), bilstm.init(rng, dtype="float32")
    x = B.asarray(rng.standard_normal((2, 4, 2)), "float32")
    mask = _mask([4, 2], 2, 4)
    (out, (h_n, c_n)), cache = lstm.forward(p, x, mask)
    grads, dx, (dh0, dc0) = lstm.backward(p, cache, B.xp().ones_like(out))
    bout, bcache = bilstm.forward(bp, x, mask)
    bgrads, bdx = bilstm.backward(bp, bcache, B.xp().ones_like(bout))
    arrays = [out, h_n, c_n, dx, dh0, dc0, bout, bdx, *grads["layer1"].values(), *bgrads["layer0"]["bwd"].values()]
    assert all(a.dtype == np.float32 for a in arrays)


def _bad_lstm_call(kind):
    lstm = LSTM(3, 4, num_layers=2)
    p = lstm.init(B.host_rng(0))
    x = np.ones((2, 5, 3))
    ok_state = (np.zeros((2, 2, 4)), np.zeros((2, 2, 4)))
    calls = {
        "x rank": lambda: lstm.forward(p, np.ones((2, 5))),
        "x features": lambda: lstm.forward(p, np.ones((2, 5, 4))),
        "x no steps": lambda: lstm.forward(p, np.ones((2, 0, 3))),
        "x int": lambda: lstm.forward(p, np.ones((2, 5, 3), dtype=np.int64)),
        "x float32": lambda: lstm.forward(p, np.ones((2, 5, 3), dtype=np.float32)),
        "x nan": lambda: lstm.forward(p, np.where(np.arange(5)[:, None] == 2, np.nan, x)),
        "mask shape": lambda: lstm.forward(p, x, np.ones((2, 4))),
        "mask values": lambda: lstm.forward(p, x, np.full((2, 5), 2.0)),
        "mask nan": lambda: lstm.forward(p, x, np.full((2, 5), np.nan)),
        "mask left-padded": lambda: lstm.forward(p, x, np.array([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])),
        "h0 shape": lambda: lstm.forward(p, x, None, (np.zeros((1, 2, 4)), ok_state[1])),
        "c0 dtype": lambda: lstm.forward(p, x, None, (ok_state[0], np.zeros((2, 2, 4), np.float32))),
        "state not a pair": lambda: lstm.forward(p, x, None, np.zeros((2, 2, 2, 4))),
        "h0 nan": lambda: lstm.forward(p, x, None, (np.full((2, 2, 4), np.nan), ok_state[1])),
        "d_outputs shape": lambda: lstm.backward(p, lstm.forward(p, x)[1], np.ones((2, 5, 3))),
        "d_final shape": lambda: lstm.backward(p, lstm.forward(p, x)[1], np.ones((2, 5, 4)), (np.ones((2, 4)),) * 2),
        "hidden_size": lambda: LSTM(3, 0),
    }
    return calls[kind]


@pytest.mark.parametrize(
    "kind,error,match",
    [
        ("x rank", ValueError, r"x must have shape \(\*, \*, 3\)"),
        ("x features", ValueError, r"x must have shape \(\*, \*, 3\), got \(2, 5, 4\)"),
        ("x no steps", ValueError, "at least one time step"),
        ("x int", TypeError, "float32 or float64"),
        ("x float32", TypeError, "parameters are float64"),
        ("x nan", ValueError, "x contains NaN"),
        ("mask shape", ValueError, r"mask must have shape \(2, 5\)"),
        ("mask values", ValueError, "only 0 and 1"),
        ("mask nan", ValueError, "only 0 and 1"),
        ("mask left-padded", ValueError, "right-padded"),
        ("h0 shape", ValueError, r"h0 must have shape \(2, 2, 4\)"),
        ("c0 dtype", TypeError, "c0 is float32"),
        ("state not a pair", ValueError, r"initial_state must be a pair of arrays \(h, c\)"),
        ("h0 nan", ValueError, "h0 contains NaN"),
        ("d_outputs shape", ValueError, r"d_outputs must have shape \(2, 5, 4\)"),
        ("d_final shape", ValueError, r"dh_n must have shape \(2, 2, 4\)"),
        ("hidden_size", ValueError, "hidden_size must be an integer >= 1"),
    ],
)
def test_lstm_rejects_bad_input(kind, error, match):
    with pytest.raises(error, match=match):
        _bad_lstm_call(kind)()


def test_bilstm_rejects_bad_input():
    bilstm = BiLSTM(3, 4)
    p = bilstm.init(B.host_rng(0))
    x = np.ones((2, 5, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 3\)"):
        bilstm.forward(p, np.ones((2, 5, 2)))
    with pytest.raises(TypeError, match="parameters are float64"):
        bilstm.forward(p, x.astype(np.float32))
    with pytest.raises(ValueError, match="right-padded"):
        bilstm.forward(p, x, np.array([[1, 0, 1, 0, 0], [1, 1, 1, 1, 1]]))
    with pytest.raises(ValueError, match=r"d_outputs must have shape \(2, 5, 8\)"):
        bilstm.backward(p, bilstm.forward(p, x)[1], np.ones((2, 5, 4)))


@given(seeds, st.integers(1, 3), st.integers(1, 4), st.integers(1, 2))
def test_step_by_step_equals_the_whole_sequence(seed, T, hidden, layers):
    """LSTM.step, run T times from the initial state, reproduces forward's outputs and final state."""
    rng = B.host_rng(seed)
    lstm = LSTM(3, hidden, num_layers=layers)
    params = lstm.init(rng)
    x = rng.standard_normal((2, T, 3))
    state = (rng.standard_normal((layers, 2, hidden)), rng.standard_normal((layers, 2, hidden)))
    (out, (h_n, c_n)), _ = lstm.forward(params, x, initial_state=state)
    for t in range(T):
        state = lstm.step(params, x[:, t], state)
        np.testing.assert_allclose(state[0][-1], out[:, t], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[0], h_n, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[1], c_n, rtol=1e-12, atol=1e-14)


@given(seeds, shapes())
def test_the_forward_traces_when_only_the_input_is_traced(seed, shape):
    """Each step's in-place arithmetic must also trace where the parameters and the initial state
    are plain and only x is a box (as in the latent model's emission, differentiated in z alone)."""
    batch, T, D, H, layers, lengths = shape
    rng = B.host_rng(seed)
    lstm, bilstm = LSTM(D, H, num_layers=layers), BiLSTM(D, H, num_layers=layers)
    p, bp = lstm.init(rng), bilstm.init(rng)
    x, mask = rng.standard_normal((batch, T, D)), _mask(lengths, batch, T)
    d_out, bd_out = rng.standard_normal((batch, T, H)), rng.standard_normal((batch, T, 2 * H))
    (dx_auto,) = autograd_grads(lambda x: vjp_loss(lstm.forward(p, x, mask)[0][0], d_out), x)
    (bdx_auto,) = autograd_grads(lambda x: vjp_loss(bilstm.forward(bp, x, mask)[0], bd_out), x)
    _, dx, _ = lstm.backward(p, lstm.forward(p, x, mask)[1], d_out)
    _, bdx = bilstm.backward(bp, bilstm.forward(bp, x, mask)[1], bd_out)
    assert_grads_close((dx, bdx), (dx_auto, bdx_auto))
