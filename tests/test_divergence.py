"""Divergence is reported as divergence (issue 16, item 10): the step, the last loss and what to
change, instead of a NaN check failing deep inside a layer or a loss that climbs in silence."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.discrete import build_model
from mini_flows.latent import LatentConfig, LatentFlowModel
from mini_flows.latent.train import train
from mini_flows.optim import Adam, TrainingDiverged, loss_rise
from mini_flows.train import Progress, fit


def test_latent_training_at_a_huge_learning_rate_names_the_step_the_loss_and_the_fix():
    model = LatentFlowModel(LatentConfig(8, 10, prior="af/scf", latent_dim=4, embed_size=16, hidden_size=16))
    rng = B.host_rng(1)
    data = [(rng.integers(0, 8, (16, 10)), rng.integers(1, 11, 16))]
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2 \(loss [0-9.]+ at step 1\): .*NaN or "
                                               r"infinity; lower the learning rate \(now 1000\)"), \
            np.errstate(over="ignore", invalid="ignore"):
        train(model, model.init(B.host_rng(0)), data, steps=5, seed=0, lr=1e3, clip=None)


def test_a_discrete_model_whose_loss_climbs_says_so(capsys):
    model = build_model("bipartite", 4, 6, num_flows=1, network="mlp", hidden=8)
    data = B.asarray(B.host_rng(0).integers(0, 4, (512, 6)))
    _, history = fit(model.loss_and_grads, model.init(B.host_rng(0)),
                     lambda step: data[(step % 8) * 64:(step % 8 + 1) * 64], 60, Adam(lr=1e3), reporter=Progress("runaway", 60))
    out = capsys.readouterr().out
    assert loss_rise(history["loss"]) is not None and "runaway: warning: the loss rose from" in out and "(it started at 1000)" in out


def test_loss_rise_compares_the_end_with_the_first_step():
    assert loss_rise([3.0, 2.0, 1.0]) is None
    assert loss_rise([5.0]) is None
    assert loss_rise([1.0, 1.05, 1.09]) is None  # noise, not divergence
    assert loss_rise([1.0, 0.5] + [2.0] * 18) == ("warning: the loss rose from 1 (step 1) to 2 (mean of the last 2): "
                                                  "training diverged upward; lower the learning rate")
