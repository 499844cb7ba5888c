"""A toy model small enough to integrate: T = 1 and H = 1, so

    p(x) = integral p(x | z) p(z) dz = integral N(eps; 0, 1) p(x | f(eps)) d eps

is a one-dimensional integral, done by the trapezoidal rule over eps in [-12, 12] (outside it the
Gaussian weight is below 1e-31); so is the ELBO, an integral over the reparameterisation noise.
Against them: the importance-sampled estimate approaches the exact log-likelihood as the samples
grow, the ELBO stays below it and its Monte Carlo estimate approaches it, and samples follow p(x)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mini_flows import backend as B
from tests.latent.common import context, small_model

CASES = [(kind, output, seed) for kind in ("af/af", "af/none") for output in ("categorical", "bernoulli")
         for seed in (0, 1, 2)]


def toy(kind, output, seed):
    """The model, its params (q widened to twice its standard deviation, see below) and every x."""
    model = small_model(kind, output, K=3 if output == "categorical" else 2, H=1, max_length=1, hidden=2, embed=2)
    params = model.init(B.host_rng(seed))
    # A proposal wider than the posterior keeps the importance weights' variance finite, the
    # condition for the estimate to converge; with q as initialised it may be narrower.
    params["inference"]["out"]["b"] = params["inference"]["out"]["b"] + B.asarray([0.0, math.log(4.0)])
    if output == "categorical":
        xs = np.arange(3)[:, None]
    else:
        xs = np.array(list(itertools.product([0.0, 1.0], repeat=2)))[:, None, :]
    return model, params, xs


GRID = np.linspace(-12, 12, 24001)
GAUSS = np.exp(-GRID**2 / 2) / math.sqrt(2 * math.pi)


def exact_log_likelihood(model, params, xs):
    """log p(x | T = 1) for every x by quadrature over eps."""
    eps = GRID
    n = len(eps)
    ones = B.asarray(np.ones(n, dtype=int))
    z, _, _ = model.prior.forward(params["prior"], B.asarray(eps[:, None, None]), ones)
    E = params["embed"]["E"]
    out = []
    for x in xs:
        x_n = B.asarray(np.repeat(x[None], n, axis=0))
        log_px = B.to_numpy(model.emission.log_prob_and_cache(params["emission"], E, z, x_n, context(model, ones, 1))[0])
        out.append(math.log(np.trapezoid(GAUSS * np.exp(log_px), eps)))
    return np.array(out)


def exact_elbo(model, params, xs):
    """E_q[log p(x | z) + log p(z) - log q(z | x)] for every x by quadrature over the noise (a
    smooth integrand: every 6th grid point suffices)."""
    grid, gauss = GRID[::6], GAUSS[::6]
    noise = np.repeat(grid[:, None], len(xs), axis=1)[..., None, None]  # (grid, batch, T = 1, H = 1)
    return np.trapezoid(gauss[:, None] * log_weights(model, params, xs, noise), grid, axis=0)


def log_weights(model, params, xs, noise):
    """log p(x | z_s) + log p(z_s) - log q(z_s | x) : (S, batch) on the host."""
    rec, kl = model.sample_terms(params, xs, np.ones(len(xs), dtype=int), noise)
    return B.to_numpy(rec - kl)


@pytest.mark.parametrize("kind,output,seed", CASES)
def test_importance_sampling_converges_to_the_exact_likelihood(kind, output, seed):
    model, params, xs = toy(kind, output, seed)
    exact = exact_log_likelihood(model, params, xs)
    np.testing.assert_allclose(np.exp(exact).sum(), 1.0, rtol=1e-9)  # the quadrature is accurate
    ones = np.ones(len(xs), dtype=int)
    errors = {}
    for S in (1, 1000):
        draws = [B.rng(100 + r).standard_normal((S, len(xs), 1, 1)) for r in range(10)]
        errors[S] = np.mean([np.abs(B.to_numpy(model.importance_sampled_log_likelihood(params, xs, ones, d)) - exact)
                             for d in draws])
    assert errors[1000] < 0.1 * errors[1], errors
    assert errors[1000] < 0.15, errors
    elbo = exact_elbo(model, params, xs)
    assert np.all(elbo < exact), "the ELBO must stay below log p(x)"
    log_w = np.concatenate([log_weights(model, params, xs, d) for d in draws])  # 10000 samples
    standard_error = log_w.std(axis=0) / math.sqrt(len(log_w))
    assert np.all(np.abs(log_w.mean(axis=0) - elbo) < 4 * standard_error), "the ELBO estimate is unbiased"


@pytest.mark.parametrize("kind,output", [("af/af", "categorical"), ("af/none", "bernoulli")])
def test_samples_follow_the_exact_distribution(kind, output):
    model, params, xs = toy(kind, output, 0)
    p = np.exp(exact_log_likelihood(model, params, xs))
    n = 20000
    x = B.to_numpy(model.sample(params, n, seed=5, lengths=np.ones(n, dtype=int))[0])
    if output == "categorical":
        freq = np.bincount(x[:, 0], minlength=3) / n
    else:
        freq = np.array([np.mean(np.all(x[:, 0] == config, axis=-1)) for config in xs[:, 0]])
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / n).max() + 1e-3)
