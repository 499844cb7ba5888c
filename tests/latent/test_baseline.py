"""The LSTM baseline, with categorical tokens and with Bernoulli frames: backward equals autograd,
p(x | T) sums to one over every sequence of each length, padding never changes a score, sampling
follows the model, and bad input raises."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig
from mini_flows.latent.dropout import dropout_mask
from mini_flows.nn.tree import flatten, tree_map
from mini_flows.optim import Adam
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
outputs = st.sampled_from(["categorical", "bernoulli"])


@st.composite
def configs(draw):
    """(model, batch, T, lengths) with tiny sizes; max_length may exceed T."""
    output, K, E, H = draw(outputs), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layers, tie = draw(st.integers(1, 2)), draw(st.booleans())
    batch, T = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    max_length = T + draw(st.integers(0, 2))
    lengths = draw(st.lists(st.integers(1, T), min_size=batch, max_size=batch))
    note(f"{output}, K {K}, E {E}, H {H}, layers {layers}, tie {tie}, T {T}, max_length {max_length}, "
         f"lengths {lengths}")
    model = LSTMBaseline(BaselineConfig(K, max_length, embed_size=E, hidden_size=H, num_layers=layers, tie_weights=tie,
                                        output=output))
    return model, batch, T, np.asarray(lengths)


def _data(rng, model, batch, T, lengths):
    """Random tokens or 0/1 frames with garbage in the padding: any integer, or any float and NaN."""
    real = np.arange(T)[None, :] < lengths[:, None]
    if model.output == "categorical":
        return np.where(real, rng.integers(0, model.K, size=(batch, T)), rng.integers(-10**6, 10**6, size=(batch, T)))
    garbage = np.where(rng.random((batch, T, model.K)) < 0.2, np.nan, 1e6 * rng.standard_normal((batch, T, model.K)))
    return np.where(real[..., None], rng.integers(0, 2, size=(batch, T, model.K)), garbage)


def _every_sequence(model, T):
    """All K^T token sequences or all 2^(T K) frame sequences of length T."""
    if model.output == "categorical":
        return np.asarray(list(itertools.product(range(model.K), repeat=T)))
    return np.asarray(list(itertools.product((0, 1), repeat=T * model.K))).reshape(-1, T, model.K)


@given(seeds, configs(), st.booleans())
def test_backward_matches_autograd(seed, config, with_dropout):
    model, batch, T, lengths = config
    rng = B.host_rng(seed)
    params = model.init(rng)
    x = _data(rng, model, batch, T, lengths)
    mask = dropout_mask(rng, 0.3, (batch, T, model.lstm.hidden_size)) if with_dropout else None
    dlogp = rng.standard_normal(batch)
    _, cache = model.forward(params, x, lengths, mask)
    hand = model.backward(params, cache, dlogp)
    (auto,) = autograd_grads(lambda p: vjp_loss(model.forward(p, x, lengths, mask)[0], dlogp), params)
    assert_grads_close(hand, auto)


@given(seeds, configs())
def test_loss_and_grads_is_the_mean_nll_per_token_with_its_dropout(seed, config):
    model, batch, T, lengths = config
    model = LSTMBaseline(dataclasses.replace(model.hparams, dropout=0.25))
    rng = B.host_rng(seed)
    params = model.init(rng)
    x = _data(rng, model, batch, T, lengths)
    loss, grads = model.loss_and_grads(params, x, lengths, B.rng(seed))
    mask = dropout_mask(B.rng(seed), 0.25, (batch, T, model.lstm.hidden_size))

    def mean_nll(p):
        return -model.forward(p, x, lengths, mask)[0].sum() / lengths.sum()

    np.testing.assert_allclose(loss, mean_nll(params), rtol=1e-12)
    assert_grads_close(grads, autograd_grads(mean_nll, params)[0])


@given(seeds, outputs, st.integers(1, 2), st.integers(1, 2), st.booleans(), st.integers(0, 2))
def test_probabilities_of_every_sequence_sum_to_one(seed, output, K, layers, tie, extra):
    """sum over x of p(x | T) = 1 for each T, and sum over T and x of p(x) = 1, by enumeration."""
    max_length = 3
    model = LSTMBaseline(BaselineConfig(K + (output == "categorical"), max_length + extra, embed_size=2, hidden_size=3,
                                        num_layers=layers, tie_weights=tie, output=output))
    params = tree_map(lambda a: 3 * a, model.init(B.host_rng(seed)))  # large weights: every input matters
    model.fit_lengths(np.asarray([1, 3, 3, 2 + extra]))
    total = 0.0
    for T in range(1, max_length + 1):
        x = _every_sequence(model, T)
        lengths = np.full(len(x), T)
        padded = np.concatenate([x, np.full((len(x), extra, *x.shape[2:]), 7)], axis=1)  # padding past T
        np.testing.assert_allclose(np.exp(model.forward(params, padded, lengths)[0]).sum(), 1.0, rtol=1e-12)
        total += np.exp(model.log_prob(params, x, lengths)).sum()
    p_rest = np.exp(model.length_prior.log_probs[max_length:]).sum()
    np.testing.assert_allclose(total + p_rest, 1.0, rtol=1e-12)


@given(seeds, configs(), st.integers(0, 3))
def test_padding_never_changes_a_score(seed, config, extra):
    model, batch, T, lengths = config
    rng = B.host_rng(seed)
    params = model.init(rng)
    x = _data(rng, model, batch, T, lengths)
    more = np.concatenate([x, _data(rng, model, batch, extra, np.zeros(batch, int))], axis=1)
    log_p = model.log_prob(params, x, lengths)
    for b, L in enumerate(lengths):
        alone = model.log_prob(params, x[b : b + 1, :L], lengths[b : b + 1])
        np.testing.assert_allclose(log_p[b], alone[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.log_prob(params, more, lengths)[b], alone[0], rtol=1e-12, atol=1e-12)


@given(seeds, configs(), st.integers(1, 5))
def test_sampling_gives_valid_sequences_and_lengths(seed, config, n):
    model, _, _, lengths = config
    params = model.init(B.host_rng(seed))
    model.fit_lengths(lengths)
    x, drawn = model.sample(params, n, seed)
    assert drawn.shape == (n,) and drawn.min() >= 1 and drawn.max() <= model.max_length
    if model.output == "categorical":
        assert x.shape == (n, drawn.max()) and x.dtype.kind == "i"
        assert x.min() >= 0 and x.max() < model.K
    else:
        assert x.shape == (n, drawn.max(), model.K) and x.dtype == np.float64
        assert np.isin(x, (0.0, 1.0)).all()
    assert not x[np.arange(drawn.max())[None, :] >= drawn[:, None]].any()
    np.testing.assert_array_equal(x, model.sample(params, n, seed)[0])
    assert np.isfinite(model.log_prob(params, x, drawn)).all()
    given_x, given_lengths = model.sample(params, len(lengths), seed, lengths=lengths)
    np.testing.assert_array_equal(given_lengths, lengths)
    assert given_x.shape[:2] == (len(lengths), lengths.max())


@pytest.mark.parametrize("output, K", [("categorical", 3), ("bernoulli", 2)])
def test_sample_frequencies_match_the_model_probabilities(output, K):
    T, n = 2, 100000
    model = LSTMBaseline(BaselineConfig(K, T, embed_size=2, hidden_size=3, output=output))
    params = tree_map(lambda a: 4 * a, model.init(B.host_rng(5)))  # large weights: every input matters
    x, _ = model.sample(params, n, seed=6, lengths=np.full(n, T))
    every = _every_sequence(model, T)
    p = np.exp(model.forward(params, every, np.full(len(every), T))[0])
    counts = np.asarray([(x == e).reshape(n, -1).all(axis=1).sum() for e in every])
    assert (np.abs(counts / n - p) <= 5 * np.sqrt(p * (1 - p) / n)).all(), (counts / n, p)


@pytest.mark.parametrize("output", ["categorical", "bernoulli"])
def test_training_learns_a_pattern_only_the_length_encoding_reveals(output):
    """x_t = (T - 1 - t) mod K (the token, or the one key sounding): the first step is T - 1 mod K,
    which only the length conditioning tells an autoregressive model; after training every step
    is near certain."""
    K, max_length = 3, 5
    model = LSTMBaseline(BaselineConfig(K, max_length, embed_size=8, hidden_size=16, num_layers=1, output=output))
    params = model.init(B.host_rng(0))
    lengths = np.arange(1, max_length + 1)
    x = np.where(np.arange(max_length)[None, :] < lengths[:, None],
                 (lengths[:, None] - 1 - np.arange(max_length)[None, :]) % K, 0)
    if output == "bernoulli":
        x = np.eye(K)[x] * (np.arange(max_length)[None, :, None] < lengths[:, None, None])
    optimizer = Adam(lr=3e-2)
    first, _ = model.loss_and_grads(params, x, lengths)
    for _ in range(150):
        loss, grads = model.loss_and_grads(params, x, lengths)
        optimizer.step(params, grads)
    assert first > 0.5 and loss < 0.02, (first, loss)


def test_bernoulli_start_is_not_silence():
    """s_{-1} = e_K, a start indicator, while a silent frame is s = 0: in an untied model an all-silent
    piece reads row K of E (at step 0) and no other row."""
    model = LSTMBaseline(BaselineConfig(2, 3, embed_size=2, hidden_size=3, tie_weights=False, output="bernoulli"))
    params = model.init(B.host_rng(0))
    log_p, cache = model.forward(params, np.zeros((1, 3, 2)), np.asarray([3]))
    dE = model.backward(params, cache, np.ones(1))["embed"]["E"]
    assert not dE[:2].any() and np.abs(dE[2]).min() > 0, dE
    params["embed"]["E"][2] += 1.0
    assert model.forward(params, np.zeros((1, 3, 2)), np.asarray([3]))[0][0] != log_p[0]


@pytest.mark.parametrize("output, x", [("categorical", [[0, 1, 3], [2, 0, 0]]),
                                       ("bernoulli", np.eye(4)[[[0, 1, 3], [2, 0, 0]]])])
def test_float32_keeps_its_dtype(output, x):
    model = LSTMBaseline(BaselineConfig(4, 3, embed_size=2, hidden_size=2, output=output))
    params = model.init(B.host_rng(0), "float32")
    x, lengths = np.asarray(x), np.asarray([3, 1])
    assert model.log_prob(params, x, lengths).dtype == np.float32
    _, grads = model.loss_and_grads(params, x, lengths)
    assert grads["lstm"]["layer0"]["W_h"].dtype == np.float32 and grads["embed"]["E"].dtype == np.float32
    np.testing.assert_allclose(model.log_prob(params, x, lengths),
                               model.log_prob(model.init(B.host_rng(0)), x, lengths), rtol=1e-5)
    assert model.sample(params, 2, seed=0)[0].dtype == (np.float32 if output == "bernoulli" else np.int64)


@pytest.mark.parametrize("output", ["categorical", "bernoulli"])
def test_config_survives_json_and_rebuilds_an_equal_model(output):
    model = LSTMBaseline(BaselineConfig(4, 5, embed_size=2, hidden_size=3, num_layers=2, tie_weights=False,
                                        dropout=0.25, output=output))
    model.fit_lengths(np.asarray([1, 4, 4]))
    config = json.loads(json.dumps(model.config))
    assert config == model.config and config["length_counts"] == [1, 0, 0, 2, 0] and config["dropout"] == 0.25
    again = LSTMBaseline.from_config(config)
    assert again.hparams == model.hparams
    params = model.init(B.host_rng(0))
    for a, b in zip(flatten(again.init(B.host_rng(0))).values(), flatten(params).values()):
        np.testing.assert_array_equal(a, b)
    x, lengths = _data(B.host_rng(1), model, 2, 5, np.asarray([5, 3])), np.asarray([5, 3])
    np.testing.assert_array_equal(again.log_prob(params, x, lengths), model.log_prob(params, x, lengths))


LENGTH_ERRORS = [
    (TypeError, "lengths must be an integer", np.asarray([3.0, 1.0]), 3),
    (ValueError, "lengths must have shape", np.asarray([3]), 3),
    (ValueError, r"lengths must lie in \[1, 3\]", np.asarray([0, 1]), 3),
    (ValueError, r"lengths must lie in \[1, 2\]", np.asarray([3, 1]), 2),
    (ValueError, r"lengths must lie in \[1, 3\]", np.asarray([4, 1]), 5),
]


def test_bad_tokens_raise():
    model = LSTMBaseline(BaselineConfig(4, 3, embed_size=2, hidden_size=2))
    params = model.init(B.host_rng(0))
    tokens, lengths = np.asarray([[0, 1, 3], [2, 0, 0]]), np.asarray([3, 1])
    bad = [
        (TypeError, "integer", tokens.astype(float), lengths),
        (ValueError, "shape", tokens[0], lengths),
        (ValueError, "at least one", np.zeros((2, 0), int), lengths),
        (ValueError, r"\[0, 4\)", np.asarray([[0, 4, 0], [1, 0, 0]]), lengths),
        (ValueError, r"\[0, 4\)", np.asarray([[0, 1, 0], [-1, 0, 0]]), lengths),
        *((error, message, np.zeros((2, T), int), L) for error, message, L, T in LENGTH_ERRORS),
    ]
    for error, message, x, L in bad:
        with pytest.raises(error, match=message):
            model.log_prob(params, x, L)
    with pytest.raises(TypeError, match="float64"):
        model.forward(params, tokens, lengths, np.ones((2, 3, 2), np.float32))
    with pytest.raises(ValueError, match="dropout_mask must have shape"):
        model.forward(params, tokens, lengths, np.ones((2, 3, 3)))
    for kwargs in ({"dropout": 1.0}, {"dropout": -0.1}, {"max_length": 0}, {"vocab_size": 0}, {"embed_size": 0},
                   {"output": "gaussian"}):
        with pytest.raises(ValueError):
            LSTMBaseline(BaselineConfig(**{"vocab_size": 4, "max_length": 3, **kwargs}))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(params, 0, seed=0)
    with pytest.raises(ValueError, match="lengths must"):
        model.sample(params, 2, seed=0, lengths=np.asarray([4, 1]))


def test_bad_frames_raise():
    model = LSTMBaseline(BaselineConfig(4, 3, embed_size=2, hidden_size=2, output="bernoulli"))
    params = model.init(B.host_rng(0))
    frames, lengths = np.eye(4)[[[0, 1, 3], [2, 0, 0]]], np.asarray([3, 1])
    bad = [
        (ValueError, r"x must have shape \(\*, \*, 4\)", frames[..., :3], lengths),
        (ValueError, r"x must have shape \(\*, \*, 4\)", frames[0], lengths),
        (ValueError, "at least one", np.zeros((2, 0, 4)), lengths),
        (ValueError, "only 0 and 1", np.where(frames == 1, 0.5, 0), lengths),
        (ValueError, "only 0 and 1", np.where(frames == 1, 2, 0), lengths),
        (ValueError, "only 0 and 1", np.where(np.arange(4) == 3, np.nan, frames), lengths),
        (ValueError, "only 0 and 1", np.where(np.arange(4) == 3, np.inf, frames), lengths),
        *((error, message, np.zeros((2, T, 4)), L) for error, message, L, T in LENGTH_ERRORS),
    ]
    for error, message, x, L in bad:
        with pytest.raises(error, match=message):
            model.log_prob(params, x, L)
        with pytest.raises(error, match=message):
            model.loss_and_grads(params, x, L)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 4\)"):
        dropping = LSTMBaseline(BaselineConfig(4, 3, embed_size=2, hidden_size=2, output="bernoulli", dropout=0.5))
        dropping.loss_and_grads(params, frames[..., :3], lengths, B.rng(0))
