"""NumPy and CuPy give the same forward and backward passes (float64, 1e-10).

The CuPy cases are marked ``gpu``: skipped, with the reason, where CuPy or a GPU is missing. Each
case builds its parameters and inputs on the host, runs forward and backward on NumPy, moves the
same data to CuPy, runs them again and compares every output and gradient. The same cases run on
the strict backend (tests/strict_backend.py) everywhere: the hand-written backward passes, which
are what runs on a GPU, then meet CuPy's rules on every machine.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.continuous import build_prior
from mini_flows.discrete import build_model
from mini_flows.latent import LatentConfig, LatentFlowModel
from mini_flows.nn import activations, losses
from mini_flows.nn.layers import Dense, Embedding
from mini_flows.nn.lstm import LSTM, BiLSTM
from mini_flows.nn.made import MADE
from mini_flows.nn.transformer import TransformerEncoder
from mini_flows.nn.tree import flatten


def _to_backend(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _to_backend(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_to_backend(v) for v in tree)
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    return B.asarray(B.to_numpy(tree))


def _leaves(tree: Any) -> list[np.ndarray]:
    if isinstance(tree, dict):
        return [B.to_numpy(v) for v in flatten(tree).values()]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [] if tree is None else [B.to_numpy(tree)]


def _dense(rng):
    layer = Dense(5, 3)
    x = rng.standard_normal((4, 5))
    dy = rng.standard_normal((4, 3))

    def run(p, x, dy):
        y, cache = layer.forward(p, x)
        return y, layer.backward(p, cache, dy)

    return run, layer.init(rng), (x, dy)


def _embedding_and_cross_entropy(rng):
    emb, head = Embedding(7, 4), Dense(4, 7)
    tokens = rng.integers(0, 7, size=(3, 5))
    params = {"emb": emb.init(rng), "head": head.init(rng)}

    def run(p, tokens):
        h, c1 = emb.forward(p["emb"], tokens)
        a, c2 = activations.gelu_forward(h)
        logits, c3 = head.forward(p["head"], a)
        nll, c4 = losses.cross_entropy_forward(logits, tokens)
        g_head, da = head.backward(p["head"], c3, losses.cross_entropy_backward(c4, B.xp().ones_like(nll)))
        g_emb, _ = emb.backward(p["emb"], c1, activations.gelu_backward(c2, da))
        return nll, g_head, g_emb

    return run, params, (tokens,)


def _lstm(rng):
    lstm = LSTM(3, 4, num_layers=2)
    x = rng.standard_normal((3, 6, 3))
    mask = (np.arange(6)[None, :] < np.array([[6], [2], [4]])).astype(np.float64)
    d_out = rng.standard_normal((3, 6, 4))

    def run(p, x, mask, d_out):
        (out, final), cache = lstm.forward(p, x, mask=mask)
        return out, final, lstm.backward(p, cache, d_out)

    return run, lstm.init(rng), (x, mask, d_out)


def _bilstm(rng):
    bilstm = BiLSTM(3, 4)
    x = rng.standard_normal((3, 6, 3))
    mask = (np.arange(6)[None, :] < np.array([[6], [1], [5]])).astype(np.float64)
    d_out = rng.standard_normal((3, 6, 8))

    def run(p, x, mask, d_out):
        out, cache = bilstm.forward(p, x, mask=mask)
        return out, bilstm.backward(p, cache, d_out)

    return run, bilstm.init(rng), (x, mask, d_out)


def _transformer(rng):
    enc = TransformerEncoder(8, 2, 16, num_layers=2, max_len=6, positions="learned")
    x = rng.standard_normal((2, 6, 8))
    key_mask = (np.arange(6)[None, :] < np.array([[6], [3]])).astype(np.float64)
    dy = rng.standard_normal((2, 6, 8))

    def run(p, x, key_mask, dy):
        y, cache = enc.forward(p, x, causal=True, key_mask=key_mask)
        return y, enc.backward(p, cache, dy)

    return run, enc.init(rng), (x, key_mask, dy)


def _made(rng):
    made = MADE(4, [8, 8], 2, cond_size=3, order="reversed")
    x, cond = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    dout = rng.standard_normal((5, 4, 2))

    def run(p, x, cond, dout):
        out, cache = made.forward(p, x, cond)
        return out, made.backward(p, cache, dout)

    return run, made.init(rng), (x, cond, dout)


def _discrete_model(rng):
    model = build_model("autoregressive", 5, 4, num_flows=1, scale=True, hidden=8, network="transformer")
    tokens = rng.integers(0, 5, size=(6, 4))

    def run(p, tokens):
        loss, grads, _ = model.loss_and_grads(p, tokens)
        return model.log_prob(p, tokens), grads

    return run, model.init(B.host_rng(0)), (tokens,)


def _continuous_prior(rng):
    prior = build_prior("af/scf", 4, max_length=5, lstm_size=8, hidden_sizes=(8,))
    z = rng.standard_normal((2, 5, 4))
    lengths = np.array([5, 3])

    def run(p, z, lengths):
        logp, cache = prior.log_prob_and_cache(p, z, lengths)
        grads, dz = prior.log_prob_vjp(p, cache, B.xp().ones_like(logp))
        eps, _, _ = prior.inverse(p, z, lengths)
        z_back, logdet, _ = prior.forward(p, eps, lengths)  # the cubic inverse of every NLSq layer
        return logp, grads, dz, z_back, logdet

    return run, prior.init(rng), (z, lengths)


def _latent_model(rng):
    model = LatentFlowModel(LatentConfig(6, 5, prior="af/af", latent_dim=3, embed_size=8, hidden_size=8, num_layers=1,
                                         flow_layers=2, flow_hidden_sizes=(8,)))
    x, lengths = rng.integers(0, 6, size=(3, 5)), np.array([5, 2, 4])
    noise = rng.standard_normal((2, 3, 5, 3))

    def run(p, x, lengths, noise):
        return model.elbo_and_grads(p, x, lengths, noise)

    return run, model.init(rng), (x, lengths, noise)


CASES: dict[str, Callable] = {
    "discrete model": _discrete_model,
    "continuous prior": _continuous_prior,
    "latent model": _latent_model,
    "dense": _dense,
    "embedding+gelu+cross_entropy": _embedding_and_cross_entropy,
    "lstm": _lstm,
    "bilstm": _bilstm,
    "transformer": _transformer,
    "made": _made,
}


@pytest.mark.parametrize("device", [pytest.param("cupy", marks=pytest.mark.gpu), "strict"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_device_matches_numpy_forward_and_backward(name, device):
    with B.use_backend("numpy"):  # host parameters and inputs, whichever backend --backend selected
        run, params, inputs = CASES[name](B.host_rng(0))
        expected = _leaves(run(params, *inputs))
    with B.use_backend(device):
        got = _leaves(run(_to_backend(params), *_to_backend(inputs)))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
