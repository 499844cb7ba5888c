"""float32 end to end for every latent prior and both outputs (issue 16, item 8): the ELBO, every
gradient leaf, a few training steps, importance-sampled evaluation and sampling keep float32."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.continuous.priors import PRIORS
from mini_flows.latent.train import evaluate, train
from mini_flows.nn.tree import flatten
from tests.latent.common import random_lengths, random_x, small_model


@pytest.mark.parametrize("output", ["categorical", "bernoulli"])
@pytest.mark.parametrize("prior", PRIORS)
def test_every_model_trains_evaluates_and_samples_in_float32(prior, output):
    model = small_model(prior, output=output)
    params = model.init(B.host_rng(0), "float32")
    rng = B.host_rng(1)
    x, lengths = random_x(model, rng, 3, 4), random_lengths(rng, 3, 4)
    eps = B.rng(2).standard_normal((2, 3, 4, model.H), dtype="float32")
    rec, kl, grads = model.elbo_and_grads(params, x, lengths, eps)
    wrong = {name: g.dtype for name, g in flatten(grads).items() if g.dtype != np.float32}
    assert rec.dtype == kl.dtype == np.float32 and not wrong, wrong
    trained, history = train(model, params, [(x, lengths)], steps=2, seed=0, samples=2)
    leaves = flatten(trained).values()
    assert all(a.dtype == np.float32 and np.isfinite(B.to_numpy(a)).all() for a in leaves)
    assert np.isfinite(history["loss"]).all()
    scores = evaluate(model, trained, [(x, lengths)], samples=4, chunk=2)
    assert np.isfinite(scores["nll"])
    drawn, _ = model.sample(trained, 2, seed=0)
    assert B.to_numpy(drawn).dtype == (np.float32 if output == "bernoulli" else np.int64)
