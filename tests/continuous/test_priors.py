"""The sequence priors AF/AF, AF/SCF, IAF/SCF and the ablations: log_prob and its backward against
autograd, padding, length encoding, sampling, range errors, bad input. Round trips, log-dets against
autograd's Jacobian, the block-triangular Jacobian (supplement A) and the backward passes of both
directions are checked by the shared harness, tests/test_bijections.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.continuous import FlowRangeError
from mini_flows.continuous.length import length_encoding, sequence_context
from mini_flows.continuous.priors import PRIORS, SequencePrior, build_prior
from tests.bijections import prior_case
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
CASES = [(kind, "nlsq") for kind in PRIORS] + [("af/af", "affine")]


def small_prior(kind, transform, H, max_length, num_layers=2):
    """tanh networks: bounded raw parameters keep random draws well conditioned (see test_layers)."""
    return build_prior(kind, H, transform, num_layers=num_layers, max_length=max_length, lstm_size=3,
                       hidden_sizes=(5,), activation="tanh")


@pytest.mark.parametrize("kind,transform", CASES)
@given(data=st.data())
def test_log_prob_vjp_matches_autograd(kind, transform, data):
    prior, params, z, lengths, rng = prior_case(kind, transform).draw(data, None)
    logp, cache = prior.log_prob_and_cache(params, z, lengths)
    eps, logdet, _ = prior.inverse(params, z, lengths)
    real = sequence_context(lengths, z.shape[1], prior.max_length).mask
    want = (real * (-0.5 * (eps**2).sum(-1) - 0.5 * z.shape[2] * np.log(2 * np.pi))).sum(1)
    np.testing.assert_allclose(logp, want + logdet, rtol=1e-12)
    dlogp = rng.standard_normal(logp.shape)
    auto = autograd_grads(lambda p, z: vjp_loss(prior.log_prob(p, z, lengths), dlogp), params, z)
    assert_grads_close(prior.log_prob_vjp(params, cache, dlogp), auto)


@pytest.mark.parametrize("kind", PRIORS)
@given(seed=seeds, length=st.integers(1, 3), pad=st.integers(1, 3))
def test_padding_never_changes_log_prob(kind, seed, length, pad):
    """A sequence alone and padded with garbage beside a longer one has the same log-probability."""
    rng = B.host_rng(seed)
    H, T = 2, length + pad
    prior = small_prior(kind, "nlsq", H, max_length=T)
    params = prior.init(rng)
    z = rng.standard_normal((1, length, H))
    alone, alone_cache = prior.log_prob_and_cache(params, z, np.array([length]))
    padded = np.concatenate([z, 1e3 * rng.standard_normal((1, pad, H))], axis=1)
    batch = np.concatenate([padded, rng.standard_normal((1, T, H))])
    together, cache = prior.log_prob_and_cache(params, batch, np.array([length, T]))
    np.testing.assert_allclose(together[0], alone[0], rtol=1e-12)
    _, dz = prior.log_prob_vjp(params, cache, np.array([1.0, 0.0]))
    _, dz_alone = prior.log_prob_vjp(params, alone_cache, np.array([1.0]))
    np.testing.assert_allclose(dz[0, :length], dz_alone[0], rtol=1e-10, atol=1e-12)
    assert np.all(dz[0, length:] == 0)  # padding gets no gradient
    eps, _, _ = prior.inverse(params, batch, np.array([length, T]))
    np.testing.assert_array_equal(eps[0, length:], batch[0, length:])  # identity on padding


def test_length_encoding_is_two_one_hots():
    enc = length_encoding(np.array([3, 1]), 4, 5)
    assert enc.shape == (2, 4, 10)
    np.testing.assert_array_equal(enc[0, :, :5].argmax(-1), [0, 1, 2, 3])  # distance from the start
    np.testing.assert_array_equal(enc[0, :3, 5:].argmax(-1), [2, 1, 0])  # distance from the end
    np.testing.assert_array_equal(enc[0, 3, 5:], 0)  # padding: no distance from the end
    np.testing.assert_array_equal(enc[1, 0, 5:], [1, 0, 0, 0, 0])
    context = sequence_context(np.array([3, 1]), 4, 5, "float32")
    np.testing.assert_array_equal(context.encoding, enc)
    assert context.encoding.dtype == context.mask.dtype == np.float32
    np.testing.assert_array_equal(context.mask, [[1, 1, 1, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(context.real, context.mask == 1)
    twice = context.repeat(2)  # sample-major: copy s of sequence b at row s * 2 + b
    for field, original in zip(twice, context):
        np.testing.assert_array_equal(field, np.concatenate([original, original]))


@pytest.mark.parametrize("kind", ["af/af", "af/scf", "none/af", "iaf/scf"])
@given(data=st.data())
def test_a_sequence_context_is_the_same_as_its_lengths(kind, data):
    prior, params, z, lengths, rng = prior_case(kind, "nlsq").draw(data, None)
    context = sequence_context(lengths, z.shape[1], prior.max_length)
    np.testing.assert_array_equal(prior.log_prob(params, z, context), prior.log_prob(params, z, lengths))
    for direction in ("forward", "inverse"):
        run = getattr(prior, direction)
        for a, b in zip(run(params, z, context)[:2], run(params, z, lengths)[:2]):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="context is float32 but z is float64"):
        prior.log_prob(params, z, sequence_context(lengths, z.shape[1], prior.max_length, "float32"))
    with pytest.raises(ValueError, match="context.encoding must have shape"):
        prior.log_prob(params, z, sequence_context(lengths, z.shape[1], prior.max_length + 1))


@pytest.mark.parametrize("kind", ["af/af", "af/scf"])
@given(data=st.data())
def test_dropout_on_the_time_lstm_matches_autograd(kind, data):
    """log p(z | T) with the time LSTM's outputs times a mask: a mask of ones changes nothing, and
    the backward pass equals autograd's on the same masked forward code."""
    prior, params, z, lengths, rng = prior_case(kind, "nlsq").draw(data, None)
    shape = (*z.shape[:2], prior.lstm_size)
    ones = prior.log_prob_and_cache(params, z, lengths, np.ones(shape))[0]
    np.testing.assert_array_equal(ones, prior.log_prob(params, z, lengths))
    mask = (rng.random(shape) > 0.4) / 0.6
    logp, cache = prior.log_prob_and_cache(params, z, lengths, mask)
    dlogp = rng.standard_normal(logp.shape)
    auto = autograd_grads(lambda p, z: vjp_loss(prior.log_prob_and_cache(p, z, lengths, mask)[0], dlogp), params, z)
    assert_grads_close(prior.log_prob_vjp(params, cache, dlogp), auto)
    with pytest.raises(ValueError, match=r"dropout_mask must have shape"):
        prior.log_prob_and_cache(params, z, lengths, np.ones((*shape[:2], shape[2] + 1)))
    with pytest.raises(ValueError, match="dropout_mask must be non-negative"):
        prior.log_prob_and_cache(params, z, lengths, -np.ones(shape))


def test_dropout_needs_a_prior_that_is_af_in_time():
    for kind in ("iaf/scf", "none/af"):
        prior = small_prior(kind, "nlsq", 2, max_length=3)
        with pytest.raises(ValueError, match="AF-in-time"):
            prior.log_prob_and_cache(prior.init(B.host_rng(0)), np.zeros((1, 2, 2)), np.array([2]), np.ones((1, 2, 3)))


@pytest.mark.parametrize("kind", PRIORS)
def test_sample_shape_padding_dtype_and_seed(kind):
    prior = small_prior(kind, "nlsq", 2, max_length=6)
    params = prior.init(B.host_rng(0), dtype="float32")
    z = prior.sample(params, 3, np.array([2, 5, 4]), seed=7)
    assert z.shape == (3, 5, 2) and z.dtype == np.float32
    assert np.all(z[0, 2:] == 0) and np.all(z[2, 4:] == 0) and np.all(np.isfinite(z))
    np.testing.assert_array_equal(z, prior.sample(params, 3, np.array([2, 5, 4]), seed=7))
    assert prior.sample(params, 2, 3, seed=1).shape == (2, 3, 2)
    assert prior.log_prob(params, z, np.array([2, 5, 4])).dtype == np.float32


def test_sample_matches_forward_of_the_same_noise():
    prior = small_prior("iaf/scf", "nlsq", 2, max_length=4)
    params = prior.init(B.host_rng(0))
    eps = B.rng(3).standard_normal((2, 4, 2))
    z, _, _ = prior.forward(params, eps, np.array([4, 4]))
    np.testing.assert_array_equal(prior.sample(params, 2, 4, seed=3), z)


@pytest.mark.parametrize(
    "z,lengths,error,match",
    [
        (np.ones((2, 3)), [3, 3], ValueError, r"z must have shape \(\*, \*, 2\)"),
        (np.ones((2, 3, 4)), [3, 3], ValueError, r"z must have shape \(\*, \*, 2\)"),
        (np.ones((2, 3, 2)), [3], ValueError, r"lengths must have shape \(2\)"),
        (np.ones((2, 3, 2)), [0, 3], ValueError, r"lengths must lie in \[1, 3\]"),
        (np.ones((2, 3, 2)), [4, 3], ValueError, r"lengths must lie in \[1, 3\]"),
        (np.ones((2, 6, 2)), [6, 3], ValueError, r"lengths must lie in \[1, 5\]"),
        (np.ones((2, 3, 2)), [2.0, 3.0], TypeError, "integer"),
        (np.full((2, 3, 2), np.nan), [3, 3], ValueError, "NaN"),
        (np.ones((2, 3, 2), np.float32), [3, 3], TypeError, "parameters are float64"),
    ],
)
def test_bad_input_raises(z, lengths, error, match):
    prior = small_prior("af/af", "affine", 2, max_length=5)
    with pytest.raises(error, match=match):
        prior.log_prob(prior.init(B.host_rng(0)), z, np.array(lengths))


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="unknown prior"):
        build_prior("iaf/af", 4)
    with pytest.raises(ValueError, match="unknown transform"):
        build_prior("af/af", 4, "spline")
    with pytest.raises(ValueError, match="time must be"):
        SequencePrior(4, time="rnn")
    with pytest.raises(ValueError, match="dim >= 2"):
        build_prior("af/scf", 1)
    prior = small_prior("af/af", "affine", 2, max_length=3)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        prior.sample(prior.init(B.host_rng(0)), 2, 4, seed=0)
    assert [len(build_prior(kind, 4).flow.layers) for kind in PRIORS] == [5, 5, 3, 5, 5]


def check_finite_or_named(run, x, lengths, name):
    """run(x, lengths) returns finite arrays, or raises FlowRangeError naming a sequence b of x
    (index (b,)) that fails on its own too; returns the error or None."""
    try:
        out = run(x, lengths)
    except FlowRangeError as err:
        (b,) = err.index
        assert 0 <= b < x.shape[0] and "SequencePrior." in str(err)
        assert f"sequence {b} of {name}" in str(err) or "log p(z) overflows" in str(err)
        with pytest.raises(FlowRangeError):
            run(x[b:b + 1], lengths[b:b + 1])
        return err
    for a in out if isinstance(out, tuple) else (out,):
        assert np.all(np.isfinite(a)), f"{name}: a finite input gave a non-finite result"
    return None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", PRIORS)
@given(seed=seeds, log_scale=st.floats(0, 1), batch=st.integers(1, 3))
def test_huge_finite_input_gives_finite_log_prob_or_names_the_sequence(kind, dtype, seed, log_scale, batch):
    """z = 10^s N(0, 1) with s up to the dtype's range: log_prob gave NaN, -inf, or an error about a
    NaN that the caller never passed; the sampling direction likewise for eps."""
    rng = B.host_rng(seed)
    prior = build_prior(kind, 4, max_length=5, lstm_size=8, hidden_sizes=(8,), num_layers=2)
    params = prior.init(rng, dtype)
    top = np.log10(np.finfo(dtype).max) - 1
    x = (10 ** (log_scale * top) * rng.standard_normal((batch, 5, 4))).astype(dtype)
    lengths = rng.integers(1, 6, size=batch)
    with np.errstate(all="ignore"):  # overflow on the way to the error
        check_finite_or_named(lambda z, n: prior.log_prob(params, z, n), x, lengths, "z")
        check_finite_or_named(lambda e, n: prior.forward(params, e, n)[:2], x, lengths, "eps")


def test_log_prob_of_the_reported_large_inputs():
    """The reported case: [nan, nan, -2.56e20] at 1e4, -inf at 1e3, "x contains NaN" at 1e6."""
    prior = build_prior("af/scf", 4, max_length=10, lstm_size=8, hidden_sizes=(8,), num_layers=2)
    params = prior.init(B.host_rng(0))
    lengths = np.array([10, 10, 10])
    z = np.random.default_rng(0).standard_normal((3, 10, 4))
    assert np.all(np.isfinite(prior.log_prob(params, 1e2 * z, lengths)))
    for scale, match in [(1e3, r"log p\(z\) overflows float64"), (1e4, "sequence 0 of z"), (1e6, "sequence 0 of z")]:
        with np.errstate(all="ignore"), pytest.raises(FlowRangeError, match=match):
            prior.log_prob(params, scale * z, lengths)
