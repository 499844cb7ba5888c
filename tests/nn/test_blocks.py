"""Every block of mini_flows.nn follows the one convention of ``nn.block``: init -> params,
forward -> (output, cache), backward -> (grads mirroring params, dx matching x, one gradient per
further array input). A new block joins the registry with one line."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.nn.attention import LayerNorm, MultiHeadAttention
from mini_flows.nn.block import Block
from mini_flows.nn.layers import Dense, Embedding
from mini_flows.nn.lstm import LSTM, BiLSTM
from mini_flows.nn.made import MADE
from mini_flows.nn.mlp import MLP
from mini_flows.nn.transformer import TransformerBlock, TransformerEncoder
from mini_flows.nn.tree import flatten

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 5, 4))
BLOCKS = {  # name -> (block, forward's inputs on the host, how many gradients backward returns after grads)
    "Dense": (Dense(4, 3), (X,), 1),
    "Embedding": (Embedding(6, 3), (rng.integers(0, 6, (2, 5)),), 1),
    "MLP": (MLP(4, [8], 3), (X,), 1),
    "MADE": (MADE(4, [8], 2), (X[:, 0],), 2),
    "MADE with cond": (MADE(4, [8], 2, cond_size=3), (X[:, 0], rng.standard_normal((2, 3))), 2),
    "LSTM": (LSTM(4, 3, num_layers=2), (X,), 2),
    "BiLSTM": (BiLSTM(4, 3), (X,), 1),
    "LayerNorm": (LayerNorm(4), (X,), 1),
    "MultiHeadAttention": (MultiHeadAttention(4, 2), (X,), 1),
    "TransformerBlock": (TransformerBlock(4, 2, 8), (X,), 1),
    "TransformerEncoder": (TransformerEncoder(4, 2, 8, num_layers=2, max_len=5), (X,), 1),
}


def like(value):
    """A cotangent of the shape of ``value`` (arrays, or a tuple of them as LSTM returns), on the backend."""
    if isinstance(value, tuple):
        return tuple(like(v) for v in value)
    return B.asarray(rng.standard_normal(B.value(value).shape))


@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_block_follows_the_one_convention(name):
    block, host_inputs, slots = BLOCKS[name]
    inputs = tuple(B.asarray(a) for a in host_inputs)
    assert isinstance(block, Block)
    params = block.init(B.host_rng(1))
    out, cache = block.forward(params, *inputs)
    dout = like(out)
    result = block.backward(params, cache, *(dout if name == "LSTM" else (dout,)))
    assert isinstance(result, tuple) and len(result) == 1 + slots
    grads, dx, *rest = result
    shapes = {key: B.value(a).shape for key, a in flatten(params).items()}
    assert {key: B.value(g).shape for key, g in flatten(grads).items()} == shapes
    assert list(flatten(grads)) == list(shapes)  # the same keys in the same order
    if name == "Embedding":
        assert dx is None
    else:
        assert B.value(dx).shape == B.value(inputs[0]).shape
    if name == "MADE with cond":
        assert B.value(rest[0]).shape == B.value(inputs[1]).shape
    if name == "MADE":
        assert rest == [None]
    if name == "LSTM":
        dh0, dc0 = rest[0]
        assert B.value(dh0).shape == B.value(dc0).shape == (2, 2, 3)


@pytest.mark.parametrize("name", [name for name in BLOCKS if name != "LayerNorm"])  # LayerNorm draws nothing
def test_init_without_a_generator_says_what_rng_must_be(name):
    """Issue 24, item 10: init(None) raised AttributeError ('NoneType' has no 'standard_normal')."""
    for rng_ in (None, 0):
        with pytest.raises(TypeError, match=rf"rng must be a random generator such as B.host_rng\(seed\).*got {rng_}"):
            BLOCKS[name][0].init(rng_)
