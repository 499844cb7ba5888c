"""Empty batches (issue 16, item 9): a likelihood of no sequences is an empty array; a training
loss of none, and so a training step, is refused up front with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.discrete import build_model
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig
from mini_flows.latent.train import train
from tests.latent.common import noise, small_model

EMPTY = "is an empty batch .*needs at least one"


@pytest.mark.parametrize("kind,network", [("bipartite", "mlp"), ("bipartite", "transformer"),
                                          ("autoregressive", "lstm"), ("autoregressive", "made")])
def test_discrete_models_score_no_sequences_and_refuse_a_loss_of_none(kind, network):
    model = build_model(kind, 5, 4, num_flows=2, network=network, hidden=8)
    params = model.init(B.host_rng(0))
    empty = B.asarray(np.zeros((0, 4), dtype=np.int64))
    log_p = B.to_numpy(model.log_prob(params, empty))
    assert log_p.shape == (0,) and log_p.dtype == np.float64
    with pytest.raises(ValueError, match="tokens " + EMPTY):
        model.loss_and_grads(params, empty)


def test_latent_model_and_lstm_baseline_refuse_a_loss_of_none():
    model = small_model()
    params = model.init(B.host_rng(0))
    x, lengths = np.zeros((0, 4), dtype=np.int64), np.zeros((0,), dtype=np.int64)
    with pytest.raises(ValueError, match="x " + EMPTY):
        model.elbo_and_grads(params, x, lengths, noise(B.host_rng(1), 2, 0, 4, model.H))
    with pytest.raises(ValueError, match="x " + EMPTY):
        train(model, params, [(x, lengths)], steps=1, seed=0)
    baseline = LSTMBaseline(BaselineConfig(4, 4, embed_size=3, hidden_size=3))
    with pytest.raises(ValueError, match="x " + EMPTY):
        baseline.loss_and_grads(baseline.init(B.host_rng(0)), x, lengths)
