"""The latent flow model's scores and samples: ELBO terms equal their definitions, importance
sampling >= ELBO (Jensen), padding never changes a score, sampling gives valid sequences, the
length prior, and clear errors for bad input."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.continuous.priors import PRIORS
from mini_flows.latent import LatentConfig, LatentFlowModel, LengthPrior, dropout_mask, log_mean_exp
from mini_flows.nn.tree import flatten
from tests.latent.common import context, noise, noisy_params, random_lengths, random_x, small_model

host, dev = B.to_numpy, B.asarray
seeds = st.integers(0, 2**32 - 1)
OUTPUTS = ("categorical", "bernoulli")


def _naive_log_p_x_given_z(model, params, z, x, lengths):
    """sum over real t of log p(x_t | z), from the logits by the textbook formulas."""
    E = params["embed"]["E"]
    logits = host(model.emission.logits_forward(params["emission"], E, dev(z), context(model, lengths, z.shape[1]))[0])
    real = np.arange(z.shape[1])[None, :] < lengths[:, None]
    if model.output == "categorical":
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        per_step = np.take_along_axis(logp, x[..., None], axis=-1)[..., 0]
    else:
        p = 1 / (1 + np.exp(-logits))
        per_step = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(-1)
    return (real * per_step).sum(1)


@pytest.mark.parametrize("kind", PRIORS)
@pytest.mark.parametrize("output", OUTPUTS)
@given(seed=seeds, S=st.integers(1, 3), T=st.integers(1, 4), batch=st.integers(1, 3))
def test_terms_match_definitions_and_importance_sampling_bounds_elbo(kind, output, seed, S, T, batch):
    rng = B.host_rng(seed)
    model = small_model(kind, output, K=4, H=2, max_length=4)
    params = noisy_params(model, rng)
    x, lengths, eps = random_x(model, rng, batch, T), random_lengths(rng, batch, T), noise(rng, S, batch, T, 2)
    rec_s, kl_s = map(host, model.sample_terms(params, x, lengths, eps))
    mu, logvar = map(host, model.inference.forward(params["inference"], params["embed"]["E"], dev(x),
                                                   context(model, lengths, T))[0])
    real = (np.arange(T)[None, :] < lengths[:, None])[..., None]
    for s in range(S):
        z = mu + np.exp(logvar / 2) * eps[s]
        log_q = (real * -0.5 * ((z - mu) ** 2 / np.exp(logvar) + logvar + math.log(2 * math.pi))).sum((1, 2))
        log_p = host(model.prior.log_prob(params["prior"], dev(z), dev(lengths)))
        np.testing.assert_allclose(kl_s[s], log_q - log_p, rtol=1e-10, atol=1e-10)
        rec = _naive_log_p_x_given_z(model, params, z, x, lengths)
        np.testing.assert_allclose(rec_s[s], rec, rtol=1e-10, atol=1e-10)
    rec, kl = map(host, model.elbo(params, x, lengths, eps))
    iw = host(model.importance_sampled_log_likelihood(params, x, lengths, eps))
    np.testing.assert_allclose(iw, np.log(np.exp(rec_s - kl_s).mean(0)), rtol=1e-10)
    assert np.all(iw >= rec - kl - 1e-12)  # Jensen: log E[w] >= E[log w], on the same samples
    assert np.all(rec <= 0) and iw.shape == (batch,)
    np.testing.assert_allclose(host(model.log_likelihood(params, x, lengths, eps)), iw - math.log(4), rtol=1e-12)
    np.testing.assert_allclose(model.per_token(-iw, lengths), -iw.sum() / lengths.sum() / (
        math.log(2) if output == "categorical" else 1.0), rtol=1e-12)  # bits per char or nats per step


@pytest.mark.parametrize("kind", PRIORS)
@pytest.mark.parametrize("output", OUTPUTS)
@given(seed=seeds, length=st.integers(1, 3), pad=st.integers(1, 3))
def test_padding_never_changes_a_score(kind, output, seed, length, pad):
    """One sequence alone, padded with garbage (tokens, noise), and beside a longer one: same
    ELBO terms, importance-sampled likelihood and gradient."""
    rng = B.host_rng(seed)
    T = length + pad
    model = small_model(kind, output, K=3, H=2, max_length=T)
    params = noisy_params(model, rng)
    x, eps = random_x(model, rng, 1, length), noise(rng, 2, 1, length, 2)
    garbage = rng.integers(-50, 50, size=(1, pad, *x.shape[2:])).astype(x.dtype)
    x_pad = np.concatenate([x, garbage], axis=1)
    eps_pad = np.concatenate([eps, 1e3 * rng.standard_normal((2, 1, pad, 2))], axis=2)
    one = np.array([length])
    rec, kl, grads = model.elbo_and_grads(params, x, one, eps)
    rec_p, kl_p, grads_p = model.elbo_and_grads(params, x_pad, one, eps_pad)
    np.testing.assert_allclose([host(rec_p), host(kl_p)], [host(rec), host(kl)], rtol=1e-12)
    np.testing.assert_allclose(host(model.importance_sampled_log_likelihood(params, x_pad, one, eps_pad)),
                               host(model.importance_sampled_log_likelihood(params, x, one, eps)), rtol=1e-12)
    for a, b in zip(_leaves(grads_p), _leaves(grads)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-13)
    x_two = np.concatenate([x_pad, random_x(model, rng, 1, T)])
    eps_two = np.concatenate([eps_pad, noise(rng, 2, 1, T, 2)], axis=1)
    rec_two, kl_two = map(host, model.elbo(params, x_two, np.array([length, T]), eps_two))
    np.testing.assert_allclose([rec_two[0], kl_two[0]], [host(rec)[0], host(kl)[0]], rtol=1e-12)


def _leaves(tree):
    return [host(v) for _, v in sorted(flatten(tree).items())]


@pytest.mark.parametrize("kind", PRIORS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_sampling_returns_valid_sequences(kind, output):
    model = small_model(kind, output, K=5, H=2, max_length=6)
    params = model.init(B.host_rng(0))
    model.fit_lengths(np.array([2, 2, 5, 5, 5]))
    x, lengths = map(host, model.sample(params, 40, seed=3))
    assert lengths.shape == (40,) and lengths.min() >= 1 and lengths.max() <= 6
    assert x.shape[:2] == (40, lengths.max())
    real = np.arange(x.shape[1])[None, :] < lengths[:, None]
    if output == "categorical":
        assert x.dtype.kind == "i" and x.min() >= 0 and x.max() < 5
        assert np.all(x[~real] == 0)
    else:
        assert x.shape[2] == 5 and set(np.unique(x)) <= {0.0, 1.0}
        assert np.all(x[~real] == 0)
    again, again_lengths = map(host, model.sample(params, 40, seed=3))
    np.testing.assert_array_equal(again, x)
    np.testing.assert_array_equal(again_lengths, lengths)
    fixed, fixed_lengths = map(host, model.sample(params, 3, seed=1, lengths=np.array([1, 4, 6]), greedy=True))
    np.testing.assert_array_equal(fixed_lengths, [1, 4, 6])
    assert fixed.shape[:2] == (3, 6)
    rec, kl = model.elbo(params, x, lengths, B.rng(0).standard_normal((2, 40, x.shape[1], 2)))
    assert np.all(np.isfinite(host(rec))) and np.all(np.isfinite(host(kl)))  # samples are scoreable


def test_sampled_lengths_follow_the_length_prior():
    model = small_model("iaf/scf", K=3, H=2, max_length=4)
    model.fit_lengths(np.array([3] * 96))  # p(3) = 97 / 100, every other length 1 / 100
    _, lengths = model.sample(model.init(B.host_rng(0)), 2000, seed=0)
    counts = np.bincount(host(lengths), minlength=5)[1:]
    np.testing.assert_allclose(counts / 2000, [0.01, 0.01, 0.97, 0.01], atol=0.01)


def test_greedy_sample_is_the_mode_of_the_emission():
    model = small_model("af/af", K=4, H=2, max_length=3)
    params = model.init(B.host_rng(1))
    params["emission"]["bias"] = dev([0.0, 50.0, 0.0, 0.0])  # token 1 dominates every step
    x, _ = model.sample(params, 5, seed=0, lengths=np.full(5, 3), greedy=True)
    np.testing.assert_array_equal(host(x), 1)
    drawn, _ = model.sample(params, 5, seed=0, lengths=np.full(5, 3))
    np.testing.assert_array_equal(host(drawn), 1)


def test_length_prior_is_add_one_smoothed():
    prior = LengthPrior.fit(np.array([2, 2, 3]), max_length=4)
    np.testing.assert_allclose(np.exp(host(prior.log_prob(np.array([1, 2, 3, 4])))), [1 / 7, 3 / 7, 2 / 7, 1 / 7])
    assert np.isfinite(host(prior.log_prob(np.array([1])))).all()  # unseen, yet finite
    np.testing.assert_allclose(np.exp(host(LengthPrior(5).log_prob(np.arange(1, 6)))), 0.2)  # no data: uniform
    samples = host(prior.sample(7000, B.rng(0)))
    np.testing.assert_allclose(np.bincount(samples, minlength=5)[1:] / 7000, [1 / 7, 3 / 7, 2 / 7, 1 / 7], atol=0.02)


def test_log_mean_exp_is_stable():
    a = np.array([[1000.0, -1000.0], [1000.0, -1001.0]])
    want = [1000.0, -1000.5 + math.log(math.cosh(0.5))]
    np.testing.assert_allclose(host(log_mean_exp(dev(a), axis=0)), want, rtol=1e-12)


def test_log_mean_exp_of_impossible_and_certain_events():
    """Issue 24, item 9: log_mean_exp([-inf, -inf]) was NaN (-inf - -inf); the mean of zero
    probabilities is zero, log 0 = -inf, without a warning. +inf and NaN still come through."""
    inf, nan = math.inf, math.nan
    a = np.array([[-inf, -inf, 0.0, -inf, inf, nan], [-inf, -inf, -inf, 2.0, 1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = host(log_mean_exp(dev(a), axis=0))
    np.testing.assert_array_equal(got, [-inf, -inf, -math.log(2), 2.0 - math.log(2), inf, nan])
    assert host(log_mean_exp(dev(np.array([-inf, -inf])))) == -inf


def test_float32_runs_end_to_end():
    model = small_model("af/scf", K=3, H=2, max_length=3)
    params = model.init(B.host_rng(0), dtype="float32")
    eps = B.rng(0).standard_normal((2, 2, 3, 2), dtype="float32")
    rec, kl, grads = model.elbo_and_grads(params, np.array([[0, 1, 2], [2, 1, 0]]), np.array([3, 2]), eps)
    assert rec.dtype == kl.dtype == grads["prior"]["lstm"]["layer0"]["W_h"].dtype == np.float32


def test_dropout_mask_and_its_effect_on_the_prior():
    mask = host(dropout_mask(B.rng(0), 0.25, (400, 50)))
    assert set(np.unique(mask)) == {0.0, 1 / 0.75} and abs((mask == 0).mean() - 0.25) < 0.01
    model = small_model("af/scf", K=3, H=2, max_length=3)
    params = noisy_params(model, B.host_rng(0))
    x, lengths, eps = np.array([[0, 2, 1]]), np.array([3]), noise(B.host_rng(1), 2, 1, 3, 2)
    plain = model.elbo_and_grads(params, x, lengths, eps)
    ones = model.elbo_and_grads(params, x, lengths, eps, dropout_mask=np.ones((2, 3, model.prior.lstm_size)))
    for a, b in zip(_leaves(ones[2]) + [host(ones[0]), host(ones[1])],
                    _leaves(plain[2]) + [host(plain[0]), host(plain[1])]):
        np.testing.assert_array_equal(a, b)  # a mask of ones is no dropout
    zeros = model.elbo_and_grads(params, x, lengths, eps, dropout_mask=np.zeros((2, 3, model.prior.lstm_size)))
    assert host(zeros[1])[0] != host(plain[1])[0]  # the prior's context changed: log p(z) changed
    np.testing.assert_array_equal(host(zeros[0]), host(plain[0]))  # the emission did not
    assert np.all(host(zeros[2]["prior"]["lstm"]["layer0"]["W_x"]) == 0)  # no gradient reaches the LSTM


@pytest.mark.parametrize("kind, output", [("af/scf", "bernoulli"), ("iaf/scf", "categorical")])
def test_config_survives_json_and_rebuilds_an_equal_model(kind, output):
    """from_config(config) after a JSON round trip: the same configuration, p(T) included, the same
    initial parameters for the same generator and the same log-likelihoods for the same parameters."""
    model = LatentFlowModel(LatentConfig(5, 6, prior=kind, transform="affine", output=output, latent_dim=2,
                                         embed_size=3, hidden_size=4, num_layers=1, flow_layers=2,
                                         flow_hidden_sizes=(4, 3), activation="tanh", prior_lstm_size=5))
    model.fit_lengths(np.array([2, 2, 5]))
    config = json.loads(json.dumps(model.config))
    assert config == model.config and config["length_counts"] == [0, 2, 0, 0, 1, 0]
    again = LatentFlowModel.from_config(config)
    assert again.config == model.config and again.hparams == model.hparams
    params = model.init(B.host_rng(0))
    assert list(params) == ["embed", "inference", "prior", "emission"] and "embed" not in params["inference"]
    for a, b in zip(_leaves(again.init(B.host_rng(0))), _leaves(params)):
        np.testing.assert_array_equal(a, b)
    rng = B.host_rng(1)
    x, lengths, eps = random_x(model, rng, 3, 6), random_lengths(rng, 3, 6), noise(rng, 2, 3, 6, 2)
    np.testing.assert_array_equal(host(again.log_likelihood(params, x, lengths, eps)),
                                  host(model.log_likelihood(params, x, lengths, eps)))
    with pytest.raises(ValueError, match="length_counts"):
        LatentFlowModel.from_config({key: value for key, value in config.items() if key != "length_counts"})


def _bad_cases():
    x, eps = np.zeros((2, 3), int), np.zeros((2, 2, 3, 2))
    return [
        ("tokens above the vocabulary", dict(x=x + 4), ValueError, r"x must lie in \[0, 4\)"),
        ("negative tokens", dict(x=x - 1), ValueError, r"x must lie in \[0, 4\)"),
        ("float tokens", dict(x=x.astype(float)), TypeError, "integer array of tokens"),
        ("x of the wrong rank", dict(x=np.zeros((2, 3, 4), int)), ValueError, r"x must have shape \(\*, \*\)"),
        ("length zero", dict(lengths=np.array([0, 2])), ValueError, r"lengths must lie in \[1, 3\]"),
        ("length above T", dict(lengths=np.array([4, 2])), ValueError, r"lengths must lie in \[1, 3\]"),
        ("lengths of the wrong shape", dict(lengths=np.array([3])), ValueError, r"lengths must have shape \(2\)"),
        ("float lengths", dict(lengths=np.array([3.0, 2.0])), TypeError, "integer"),
        ("noise without the sample axis", dict(noise=eps[0]), ValueError, r"noise must have shape \(\*, 2, 3, 2\)"),
        ("noise of the wrong latent size", dict(noise=np.zeros((2, 2, 3, 3))), ValueError, "noise must have shape"),
        ("noise of the wrong length", dict(noise=np.zeros((2, 2, 4, 2))), ValueError, "noise must have shape"),
        ("no samples", dict(noise=np.zeros((0, 2, 3, 2))), ValueError, "at least one sample"),
        ("NaN noise", dict(noise=np.full((2, 2, 3, 2), np.nan)), ValueError, "noise contains NaN"),
        ("float32 noise", dict(noise=eps.astype(np.float32)), TypeError, "parameters are float64"),
        ("a negative KL weight", dict(kl_weight=-1.0), ValueError, "kl_weight must be"),
        ("a wrong dropout mask", dict(dropout_mask=np.ones((2, 3, 3))), ValueError,
         r"dropout_mask must have shape \(4, 3, 3\)"),
    ]


@pytest.mark.parametrize("name,change,error,match", _bad_cases(), ids=[case[0] for case in _bad_cases()])
def test_bad_input_raises(name, change, error, match):
    model = small_model("af/af", K=4, H=2, max_length=5)
    params = model.init(B.host_rng(0))
    args = dict(x=np.zeros((2, 3), int), lengths=np.array([3, 2]), noise=np.zeros((2, 2, 3, 2)), kl_weight=1.0,
                dropout_mask=None)
    args.update(change)
    with pytest.raises(error, match=match):
        model.elbo_and_grads(params, args["x"], args["lengths"], args["noise"], args["kl_weight"], args["dropout_mask"])
    if args["dropout_mask"] is None and args["kl_weight"] == 1.0:
        with pytest.raises(error, match=match):
            model.importance_sampled_log_likelihood(params, args["x"], args["lengths"], args["noise"])


def test_bad_piano_rolls_and_configuration_raise():
    model = small_model("af/af", "bernoulli", K=3, H=2, max_length=3)
    params = model.init(B.host_rng(0))
    eps = np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="only 0 and 1"):
        model.elbo(params, np.full((1, 2, 3), 0.5), np.array([2]), eps)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 3\)"):
        model.elbo(params, np.zeros((1, 2, 4)), np.array([2]), eps)
    model.elbo(params, np.concatenate([np.ones((1, 1, 3)), np.full((1, 1, 3), np.nan)], 1), np.array([1]), eps)
    with pytest.raises(ValueError, match="output must be one of"):
        LatentFlowModel(LatentConfig(3, 4, output="gaussian"))
    with pytest.raises(ValueError, match="unknown prior"):
        LatentFlowModel(LatentConfig(3, 4, prior="iaf/af"))
    with pytest.raises(ValueError, match="unknown transform"):
        LatentFlowModel(LatentConfig(3, 4, transform="spline"))
    with pytest.raises(ValueError, match="vocab_size"):
        LatentFlowModel(LatentConfig(0, 4))


def test_bad_sampling_and_dropout_requests_raise():
    model = small_model("iaf/scf", K=3, H=2, max_length=3)
    params = model.init(B.host_rng(0))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        model.sample(params, 2, seed=0, lengths=np.array([1, 4]))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(params, 0, seed=0)
    mask = dropout_mask(B.rng(0), 0.5, (1, 2, model.prior.lstm_size))
    with pytest.raises(ValueError, match="AF-in-time"):
        model.elbo_and_grads(params, np.zeros((1, 2), int), np.array([2]), np.zeros((1, 1, 2, 2)), dropout_mask=mask)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        dropout_mask(B.rng(0), 1.0, (2,))
    with pytest.raises(ValueError, match="lengths must lie"):
        LengthPrior.fit(np.array([1, 5]), max_length=4)
    with pytest.raises(ValueError, match="counts must be 4"):
        LengthPrior(4, [1, 2])
