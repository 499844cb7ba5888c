"""Runs keep their models (issue 26, item 3): every model an experiment trains is saved under
--out/models with its configuration and listed in results.json; a checkpoint rebuilds its model bit
for bit; every model's ``sample`` takes the same arguments; samples decode as the data's own."""

from __future__ import annotations

import inspect

import pytest

from mini_flows.discrete.model import DiscreteFlowModel
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.model import LatentFlowModel


@pytest.mark.parametrize("model_class", [DiscreteFlowModel, LatentFlowModel, LSTMBaseline])
def test_every_model_samples_with_the_same_arguments(model_class):
    parameters = list(inspect.signature(model_class.sample).parameters.values())
    assert [p.name for p in parameters[:4]] == ["self", "params", "n", "seed"]
    assert parameters[3].default is None
    assert all(p.default is not inspect.Parameter.empty for p in parameters[4:])  # extras stay keywords with defaults
