"""The sequence models' configurations hold JSON values whatever numbers they were given."""

from __future__ import annotations

import json

import numpy as np

from mini_flows import backend as B
from mini_flows.checkpoint import checkpoint_config, save_checkpoint
from mini_flows.latent import LatentConfig, LatentFlowModel
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig


def test_numpy_scalars_in_a_latent_config_become_python_numbers(tmp_path):
    """Issue 24, item 7: LatentConfig(max_length=np.int64(5)) built a model whose config json.dumps
    refused, so its checkpoint could not be saved."""
    config = LatentConfig(np.int64(5), max_length=np.int64(5), latent_dim=np.int32(2), embed_size=np.array(3),
                          hidden_size=np.uint16(4), num_layers=np.int64(1), flow_layers=np.int64(2),
                          flow_hidden_sizes=np.array([4, 3]), prior_lstm_size=np.int8(5))
    assert config == LatentConfig(5, 5, latent_dim=2, embed_size=3, hidden_size=4, num_layers=1, flow_layers=2,
                                  flow_hidden_sizes=(4, 3), prior_lstm_size=5)
    model = LatentFlowModel(config)
    assert json.loads(json.dumps(model.config)) == model.config
    assert all(type(n) is int for n in model.config["flow_hidden_sizes"])
    save_checkpoint(tmp_path / "latent.npz", model.init(B.host_rng(0)), config=model.config)
    assert LatentFlowModel.from_config(checkpoint_config(tmp_path / "latent.npz")).hparams == config


def test_numpy_scalars_in_a_baseline_config_become_python_numbers():
    config = BaselineConfig(np.int64(4), np.int64(3), embed_size=np.int64(2), hidden_size=np.int64(3),
                            num_layers=np.int64(1), tie_weights=np.bool_(False), dropout=np.float32(0.25))
    values = [config.vocab_size, config.max_length, config.embed_size, config.hidden_size, config.num_layers,
              config.tie_weights, config.dropout]
    assert values == [4, 3, 2, 3, 1, False, 0.25]
    assert [type(v) for v in values] == [int] * 5 + [bool, float]
    model = LSTMBaseline(config)
    assert json.loads(json.dumps(model.config)) == model.config
