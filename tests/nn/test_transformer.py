"""Layer norm, multi-head attention, Transformer block and encoder: backward equals autograd,
the causal and padding masks hide what they promise to hide, the key/value-cached steps equal the
causal forward, bad input raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.nn.activations import ACTIVATIONS
from mini_flows.nn.attention import LayerNorm, MultiHeadAttention
from mini_flows.nn import transformer
from mini_flows.nn.transformer import POSITIONS, TransformerBlock, TransformerEncoder, sinusoidal_positions
from mini_flows.nn.tree import flatten, tree_map
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss
from mini_flows.testing.compare import tree_floor

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
batches = st.integers(1, 2)
lengths = st.integers(1, 5)
d_models = st.sampled_from([4, 8])
heads = st.sampled_from([1, 2])
key_masks = st.sampled_from(["none", "random", "padded_end"])


def perturbed(params, rng):
    """Parameters away from their constant initial values (gamma = 1, biases = 0)."""
    return tree_map(lambda a: a + 0.3 * rng.standard_normal(a.shape), params)


def make_key_mask(kind, rng, batch, length):
    """None, random 0/1 (rows with no key left included), or real steps then padding."""
    if kind == "none":
        return None
    if kind == "random":
        return rng.integers(0, 2, size=(batch, length))
    lengths_ = rng.integers(1, length + 1, size=batch)
    return (np.arange(length)[None, :] < lengths_[:, None]).astype(np.int64)


def check_backward(block, params, x, seed, **kwargs):
    """The hand-written backward of ``block`` equals autograd's gradient of its forward."""
    y, cache = block.forward(params, x, **kwargs)
    dy = B.host_rng(seed + 1).standard_normal(y.shape)
    grads, dx = block.backward(params, cache, dy)
    auto = autograd_grads(lambda p, x: vjp_loss(block.forward(p, x, **kwargs)[0], dy), params, x)
    assert_grads_close((grads, dx), auto, floor=tree_floor(auto))  # b^K's gradient is 0 plus round-off


@given(seeds, st.integers(1, 8), st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_layer_norm_backward_matches_autograd(seed, dim, lead):
    rng = B.host_rng(seed)
    norm = LayerNorm(dim)
    params = perturbed(norm.init(rng), rng)
    check_backward(norm, params, rng.standard_normal((*lead, dim)) * 2 + 1, seed)


@given(seeds, batches, lengths, d_models, heads, st.booleans(), key_masks, st.integers(1, 6))
def test_attention_backward_matches_autograd(seed, batch, length, d_model, num_heads, causal, mask_kind, query_block):
    rng = B.host_rng(seed)
    attn = MultiHeadAttention(d_model, num_heads, query_block=query_block)
    params = perturbed(attn.init(rng), rng)
    key_mask = make_key_mask(mask_kind, rng, batch, length)
    note(f"key_mask={key_mask}")
    x = rng.standard_normal((batch, length, d_model))
    check_backward(attn, params, x, seed, causal=causal, key_mask=key_mask)


@given(seeds, batches, lengths, d_models, heads, st.integers(1, 8), st.sampled_from(sorted(ACTIVATIONS)),
       st.booleans(), key_masks)
def test_block_backward_matches_autograd(seed, batch, length, d_model, num_heads, d_ff, act, causal, mask_kind):
    rng = B.host_rng(seed)
    block = TransformerBlock(d_model, num_heads, d_ff, activation=act)
    params = perturbed(block.init(rng), rng)
    key_mask = make_key_mask(mask_kind, rng, batch, length)
    x = rng.standard_normal((batch, length, d_model))
    check_backward(block, params, x, seed, causal=causal, key_mask=key_mask)


@given(seeds, batches, lengths, d_models, heads, st.integers(1, 2), st.integers(0, 2),
       st.sampled_from(POSITIONS), st.booleans(), key_masks)
def test_encoder_backward_matches_autograd(
    seed, batch, length, d_model, num_heads, num_layers, extra_len, positions, causal, mask_kind
):
    rng = B.host_rng(seed)
    encoder = TransformerEncoder(d_model, num_heads, 6, num_layers, length + extra_len, positions=positions)
    params = perturbed(encoder.init(rng), rng)
    assert ("positions" in params) == (positions == "learned")
    key_mask = make_key_mask(mask_kind, rng, batch, length)
    x = rng.standard_normal((batch, length, d_model))
    check_backward(encoder, params, x, seed, causal=causal, key_mask=key_mask)


@given(seeds, batches, st.integers(2, 5), d_models, heads, st.integers(0, 3), st.sampled_from(POSITIONS))
def test_causal_output_never_depends_on_later_inputs(seed, batch, length, d_model, num_heads, t, positions):
    rng = B.host_rng(seed)
    t = t % (length - 1)
    encoder = TransformerEncoder(d_model, num_heads, 8, 2, length, positions=positions)
    params = perturbed(encoder.init(rng), rng)
    x = rng.standard_normal((batch, length, d_model))
    future = np.arange(length) > t
    x_changed = x + 10 * rng.standard_normal(x.shape) * future[None, :, None]
    y, _ = encoder.forward(params, x, causal=True)
    y_changed, _ = encoder.forward(params, x_changed, causal=True)
    np.testing.assert_array_equal(y[:, : t + 1], y_changed[:, : t + 1])
    assert not np.array_equal(y[:, t + 1 :], y_changed[:, t + 1 :])


@given(seeds, batches, lengths, d_models, heads, st.booleans())
def test_masked_keys_never_reach_real_positions(seed, batch, length, d_model, num_heads, causal):
    rng = B.host_rng(seed)
    encoder = TransformerEncoder(d_model, num_heads, 8, 2, length)
    params = perturbed(encoder.init(rng), rng)
    key_mask = rng.integers(0, 2, size=(batch, length))
    x = rng.standard_normal((batch, length, d_model))
    x_changed = x + 10 * rng.standard_normal(x.shape) * (key_mask == 0)[..., None]
    y, _ = encoder.forward(params, x, causal=causal, key_mask=key_mask)
    y_changed, _ = encoder.forward(params, x_changed, causal=causal, key_mask=key_mask)
    real = key_mask == 1
    np.testing.assert_array_equal(y[real], y_changed[real])


@given(seeds, batches, st.integers(2, 9), d_models, heads, key_masks, st.integers(1, 4))
def test_causal_query_blocks_equal_one_block(seed, batch, length, d_model, num_heads, mask_kind, query_block):
    """Causal attention over blocks of query positions, each against the keys up to its last
    position, gives the output and gradients of one block over all keys, to round-off."""
    rng = B.host_rng(seed)
    blocked = MultiHeadAttention(d_model, num_heads, query_block=query_block)
    whole = MultiHeadAttention(d_model, num_heads, query_block=length)
    params = perturbed(blocked.init(rng), rng)
    key_mask = make_key_mask(mask_kind, rng, batch, length)
    x = rng.standard_normal((batch, length, d_model))
    dy = rng.standard_normal(x.shape)
    (y, grads, dx), (y_whole, grads_whole, dx_whole) = (
        run_backward(attn, params, x, dy, causal=True, key_mask=key_mask) for attn in (blocked, whole))
    np.testing.assert_allclose(y, y_whole, rtol=1e-12, atol=1e-13)
    assert_grads_close((grads, dx), (grads_whole, dx_whole), floor=tree_floor(grads_whole))


query_slices = st.builds(slice, st.integers(0, 2), st.none() | st.integers(1, 5), st.integers(1, 3))


def make_stack(kind, d_model, num_heads, length, rng):
    """An attention, a block or a 2-layer encoder, and parameters away from their initial values."""
    stack = {"attention": lambda: MultiHeadAttention(d_model, num_heads),
             "block": lambda: TransformerBlock(d_model, num_heads, 6),
             "encoder": lambda: TransformerEncoder(d_model, num_heads, 6, 2, length)}[kind]()
    return stack, perturbed(stack.init(rng), rng)


@pytest.mark.parametrize("kind", ["attention", "block", "encoder"])
@given(seeds, batches, lengths, d_models, heads, key_masks, query_slices)
def test_outputs_at_some_positions_equal_the_whole_and_backward_matches_autograd(
    kind, seed, batch, length, d_model, num_heads, mask_kind, queries
):
    """Bidirectional attention, block and encoder asked for the positions ``queries`` give the
    whole forward's rows there, to round-off, and their backward equals autograd's."""
    rng = B.host_rng(seed)
    stack, params = make_stack(kind, d_model, num_heads, length, rng)
    key_mask = make_key_mask(mask_kind, rng, batch, length)
    x = rng.standard_normal((batch, length, d_model))
    some = {"queries" if kind != "encoder" else "outputs": queries}
    whole, _ = stack.forward(params, x, key_mask=key_mask)
    y, _ = stack.forward(params, x, key_mask=key_mask, **some)
    np.testing.assert_allclose(y, whole[:, queries], rtol=1e-12, atol=1e-13)
    check_backward(stack, params, x, seed, key_mask=key_mask, **some)


@pytest.mark.parametrize("kind", ["attention", "block", "encoder"])
def test_causal_outputs_at_some_positions_are_refused(kind):
    stack, params = make_stack(kind, 4, 2, 3, B.host_rng(0))
    name = "queries" if kind != "encoder" else "outputs"
    with pytest.raises(ValueError, match="causal attention computes every position"):
        stack.forward(params, np.ones((1, 3, 4)), causal=True, **{name: slice(1, None, 2)})
    with pytest.raises(TypeError, match="queries must be a slice of positions or None, got list"):
        stack.forward(params, np.ones((1, 3, 4)), **{name: [0, 2]})


def run_backward(block, params, x, dy, **kwargs):
    """(y, grads, dx) of block's forward and backward."""
    y, cache = block.forward(params, x, **kwargs)
    return (y, *block.backward(params, cache, dy))


def check_steps(block, params, x, start_args):
    """block.step at t = 0..T-1 on a cache from block.start equals block.forward(causal=True) at
    every position, to round-off (float64)."""
    full, _ = block.forward(params, x, causal=True)
    cache = block.start(params, *start_args)
    for t in range(x.shape[1]):
        y_t, cache = block.step(params, cache, x[:, t], t)
        note(f"t={t}")
        np.testing.assert_allclose(y_t, full[:, t], rtol=1e-12, atol=1e-13)


@given(seeds, batches, lengths, d_models, heads, st.integers(0, 2))
def test_attention_step_with_kv_cache_equals_causal_forward(seed, batch, length, d_model, num_heads, extra_len):
    rng = B.host_rng(seed)
    attn = MultiHeadAttention(d_model, num_heads)
    params = perturbed(attn.init(rng), rng)
    check_steps(attn, params, rng.standard_normal((batch, length, d_model)), (batch, length + extra_len))


@given(seeds, batches, lengths, d_models, heads, st.integers(1, 8), st.sampled_from(sorted(ACTIVATIONS)))
def test_block_step_with_kv_cache_equals_causal_forward(seed, batch, length, d_model, num_heads, d_ff, act):
    rng = B.host_rng(seed)
    block = TransformerBlock(d_model, num_heads, d_ff, activation=act)
    params = perturbed(block.init(rng), rng)
    check_steps(block, params, rng.standard_normal((batch, length, d_model)), (batch, length))


@given(seeds, batches, lengths, d_models, heads, st.integers(1, 2), st.integers(0, 2), st.sampled_from(POSITIONS))
def test_encoder_step_with_kv_cache_equals_causal_forward(
    seed, batch, length, d_model, num_heads, num_layers, extra_len, positions
):
    rng = B.host_rng(seed)
    encoder = TransformerEncoder(d_model, num_heads, 6, num_layers, length + extra_len, positions=positions)
    params = perturbed(encoder.init(rng), rng)
    check_steps(encoder, params, rng.standard_normal((batch, length, d_model)), (batch,))


def test_sinusoidal_table_is_built_once_per_dtype(monkeypatch):
    calls = []

    def counted(*args):
        calls.append(args)
        return sinusoidal_positions(*args)

    monkeypatch.setattr(transformer, "sinusoidal_positions", counted)
    rng = B.host_rng(0)
    encoder = TransformerEncoder(4, 2, 8, 1, 6)
    for dtype in ("float64", "float32", "float64"):
        params = encoder.init(rng, dtype)
        x = B.asarray(rng.standard_normal((2, 5, 4)), dtype)
        y = [encoder.forward(params, x[:, :length], causal=True)[0] for length in (5, 3)]
        np.testing.assert_allclose(y[0][:, :3], y[1], rtol=1e-5, atol=1e-6)  # one table, sliced
        encoder.step(params, encoder.start(params, 2), x[:, 0], 0)
    assert calls == [(6, 4, np.dtype("float64")), (6, 4, np.dtype("float32"))]


def test_a_query_with_no_key_to_attend_to_gets_the_output_bias():
    rng = B.host_rng(0)
    attn = MultiHeadAttention(4, 2)
    params = perturbed(attn.init(rng), rng)
    x = rng.standard_normal((2, 3, 4))
    key_mask = np.array([[0, 0, 0], [0, 1, 1]])
    y, cache = attn.forward(params, x, causal=True, key_mask=key_mask)
    np.testing.assert_array_equal(y[0], np.broadcast_to(params["output"]["b"], (3, 4)))
    np.testing.assert_array_equal(y[1, 0], params["output"]["b"])
    grads, dx = attn.backward(params, cache, np.ones_like(y))
    assert all(np.isfinite(g).all() for g in flatten(grads).values()) and np.isfinite(dx).all()


def test_sinusoidal_positions_follow_the_formula():
    length, dim = 7, 5
    P = B.to_numpy(sinusoidal_positions(length, dim))
    t = np.arange(length)[:, None]
    for i in range(dim):
        angle = t[:, 0] / 10000.0 ** (2 * (i // 2) / dim)
        np.testing.assert_allclose(P[:, i], np.sin(angle) if i % 2 == 0 else np.cos(angle), rtol=1e-13, atol=1e-15)
    assert sinusoidal_positions(3, 4, "float32").dtype == np.float32


@pytest.mark.parametrize("positions", POSITIONS)
def test_float32_input_keeps_its_dtype(positions):
    rng = B.host_rng(0)
    encoder = TransformerEncoder(8, 2, 16, 2, 6, positions=positions)
    params = encoder.init(rng, dtype="float32")
    x = B.asarray(rng.standard_normal((2, 5, 8)), "float32")
    y, cache = encoder.forward(params, x, causal=True, key_mask=np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]]))
    grads, dx = encoder.backward(params, cache, B.xp().ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in flatten(grads).values())


ENCODER = dict(d_model=4, num_heads=2, d_ff=8, num_layers=1, max_len=3)


@pytest.mark.parametrize(
    "x,kwargs,error,match",
    [
        (np.ones((2, 3)), {}, ValueError, r"x must have shape \(\*, \*, 4\)"),
        (np.ones((2, 3, 5)), {}, ValueError, r"x must have shape \(\*, \*, 4\)"),
        (np.ones((2, 4, 4)), {}, ValueError, "max_len = 3"),
        (np.ones((2, 3, 4), dtype=np.int64), {}, TypeError, "float32 or float64"),
        (np.ones((2, 3, 4), dtype=np.float32), {}, TypeError, "parameters are float64"),
        (np.full((2, 3, 4), np.nan), {}, ValueError, "NaN"),
        (np.ones((2, 3, 4)), {"key_mask": np.ones((2, 2))}, ValueError, r"key_mask must have shape \(2, 3\)"),
        (np.ones((2, 3, 4)), {"key_mask": np.full((2, 3), 2)}, ValueError, "only 0 and 1"),
        (np.ones((2, 3, 4)), {"causal": 1}, TypeError, "causal must be a bool"),
    ],
)
@pytest.mark.parametrize("positions", POSITIONS)
def test_encoder_rejects_bad_input(x, kwargs, error, match, positions):
    encoder = TransformerEncoder(**ENCODER, positions=positions)
    with pytest.raises(error, match=match):
        encoder.forward(encoder.init(B.host_rng(0)), x, **kwargs)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: MultiHeadAttention(6, 4), r"d_model \(6\) must be divisible by num_heads \(4\)"),
        (lambda: MultiHeadAttention(4, 2, query_block=0), "query_block must be an integer >= 1"),
        (lambda: TransformerEncoder(**ENCODER, positions="rotary"), "unknown positions 'rotary'"),
        (lambda: TransformerBlock(4, 2, 8, activation="swish"), "unknown activation 'swish'"),
        (lambda: TransformerEncoder(4, 2, 8, 0, 3), "num_layers must be an integer >= 1"),
        (lambda: LayerNorm(4, eps=0.0), "eps must be > 0"),
        (lambda: sinusoidal_positions(0, 4), "length must be an integer >= 1"),
    ],
)
def test_bad_configuration_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layer_norm_and_attention_check_their_inputs():
    norm = LayerNorm(4)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\)"):
        norm.forward(norm.init(B.host_rng(0)), np.ones((2, 3)))
    attn = MultiHeadAttention(4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 4\)"):
        attn.forward(attn.init(B.host_rng(0)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        attn.forward(attn.init(B.host_rng(0)), np.full((1, 3, 4), np.inf))
