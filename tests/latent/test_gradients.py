"""Hand-written backward passes of the latent model against autograd on the same forward code:
the inference network, the emission, and the whole ELBO (inference net, reparameterisation,
prior, emission, tied embedding, prior-LSTM dropout) for every prior and both output kinds."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.continuous.priors import PRIORS
from mini_flows.latent import LatentConfig, LatentFlowModel, dropout_mask
from mini_flows.testing import assert_grads_close, autograd_grads, vjp_loss
from tests.latent.common import context, noise, noisy_params, random_lengths, random_x, small_model

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
OUTPUTS = ("categorical", "bernoulli")


@st.composite
def models(draw, kind="af/af", output="categorical"):
    """A tiny model (vocab <= 5, T <= 4, H <= 3, hidden <= 4), noisy params, x, lengths and a generator."""
    K, T, batch = draw(st.integers(2, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 2))
    H = draw(st.integers(2 if kind.endswith("scf") else 1, 3))
    model = small_model(kind, output, K=K, H=H, max_length=T + draw(st.integers(0, 1)), hidden=draw(st.integers(1, 4)),
                        embed=draw(st.integers(1, 3)), layers=draw(st.integers(1, 2)),
                        flow_layers=draw(st.integers(1, 2)),
                        transform=draw(st.sampled_from(["nlsq", "affine"])))
    rng = B.host_rng(draw(seeds))
    params = noisy_params(model, rng)
    x, lengths = random_x(model, rng, batch, T), random_lengths(rng, batch, T)
    note(f"{kind}/{output}: K={K}, T={T}, H={H}, lengths={lengths}")
    return model, params, x, lengths, rng


@pytest.mark.parametrize("kind", PRIORS)
@pytest.mark.parametrize("output", OUTPUTS)
@given(data=st.data(), S=st.integers(1, 3), kl_weight=st.floats(0, 1), use_dropout=st.booleans())
def test_elbo_gradient_matches_autograd(kind, output, data, S, kl_weight, use_dropout):
    model, params, x, lengths, rng = data.draw(models(kind, output))
    batch, T = x.shape[:2]
    eps = noise(rng, S, batch, T, model.H)
    mask = None
    if use_dropout and kind.startswith("af/"):
        mask = dropout_mask(B.rng(int(rng.integers(2**32))), 0.4, (S * batch, T, model.prior.lstm_size))
    rec, kl, grads = model.elbo_and_grads(params, x, lengths, eps, kl_weight, mask)
    assert rec.shape == kl.shape == (batch,)
    (auto,) = autograd_grads(lambda p: model.loss(p, x, lengths, eps, kl_weight, mask), params)
    assert_grads_close(grads, auto)
    loss = model.loss(params, x, lengths, eps, kl_weight, mask)
    np.testing.assert_allclose(loss, -(rec - kl_weight * kl).sum() / lengths.sum(), rtol=1e-12)


@pytest.mark.parametrize("output", OUTPUTS)
@given(data=st.data())
def test_inference_network_backward_matches_autograd(output, data):
    model, params, x, lengths, rng = data.draw(models("af/af", output))
    net, p, E = model.inference, params["inference"], params["embed"]["E"]
    ctx = context(model, lengths, x.shape[1])
    (mu, logvar), cache = net.forward(p, E, x, ctx)
    dmu, dlogvar = rng.standard_normal(mu.shape), rng.standard_normal(logvar.shape)

    def loss(p, E):
        mu, logvar = net.forward(p, E, x, ctx)[0]
        return vjp_loss(mu, dmu) + vjp_loss(logvar, dlogvar)

    assert_grads_close(net.backward(p, cache, dmu, dlogvar), autograd_grads(loss, p, E))


@pytest.mark.parametrize("output", OUTPUTS)
@given(data=st.data())
def test_emission_backward_matches_autograd(output, data):
    model, params, x, lengths, rng = data.draw(models("af/af", output))
    em, p, E = model.emission, params["emission"], params["embed"]["E"]
    z = rng.standard_normal((*x.shape[:2], model.H))
    ctx = context(model, lengths, x.shape[1])
    logp, cache = em.log_prob_and_cache(p, E, z, x, ctx)
    dlogp = rng.standard_normal(logp.shape)
    auto = autograd_grads(lambda p, E, z: vjp_loss(em.log_prob_and_cache(p, E, z, x, ctx)[0], dlogp), p, E, z)
    assert_grads_close(em.log_prob_vjp(p, cache, dlogp), auto)


@given(seed=seeds, T=st.integers(2, 4))
def test_emission_sees_z_t_only_directly(seed, T):
    """Section 4.1's features [z_t, f_{t-1}, b_{t+1}]: with the direct z_t weights zeroed, logits at t
    do not depend on z_t at all, yet still depend on every other real step."""
    model = small_model("af/af", K=3, H=2, max_length=T)
    rng = B.host_rng(seed)
    params = noisy_params(model, rng)
    params["emission"]["proj"]["W"][: model.H] = 0.0
    E, ctx = params["embed"]["E"], context(model, np.array([T]), T)
    z = rng.standard_normal((1, T, model.H))
    with B.use_autograd():
        J = autograd.jacobian(lambda z: model.emission.logits_forward(params["emission"], E, z, ctx)[0])(z)
    blocks = np.abs(J[0, :, :, 0]).sum(axis=(1, 3))  # blocks[t, s] = sum |d l_t / d z_s|
    assert np.all(np.diag(blocks) == 0)
    assert np.all(blocks[~np.eye(T, dtype=bool)] > 0)


@pytest.mark.parametrize("kind", ["af/af", "af/scf", "iaf/scf"])
def test_music_shaped_step_matches_autograd_tightly(kind):
    """The music experiment's training step in miniature (piano rolls, H = 4, ReLU flow networks,
    NLSq, the paper's flow depths, S = 2 samples, KL weight 0.5, prior-LSTM dropout for AF in
    time): the hand-written ELBO terms and every gradient against autograd on the same forward
    code, to 1e-10, on one fixed batch."""
    K, T, batch, S = 6, 5, 3, 2
    model = LatentFlowModel(LatentConfig(K, T, prior=kind, output="bernoulli", latent_dim=4, embed_size=3,
                                         hidden_size=4, flow_hidden_sizes=(8,), activation="relu"))
    rng = B.host_rng(7)
    params = noisy_params(model, rng)
    x, lengths = random_x(model, rng, batch, T), np.array([T, 2, 4])
    eps = noise(rng, S, batch, T, model.H)
    mask = dropout_mask(B.rng(3), 0.3, (S * batch, T, model.prior.lstm_size)) if kind.startswith("af/") else None
    rec, kl, grads = model.elbo_and_grads(params, x, lengths, eps, 0.5, mask)
    (auto,) = autograd_grads(lambda p: model.loss(p, x, lengths, eps, 0.5, mask), params)
    assert_grads_close(grads, auto, rtol=1e-10)
    loss = model.loss(params, x, lengths, eps, 0.5, mask)
    np.testing.assert_allclose(loss, -(rec - 0.5 * kl).sum() / lengths.sum(), rtol=1e-13)
