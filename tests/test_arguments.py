"""Arguments checked where they enter, with messages that name them (issue 16, item 14)."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.cli import main
from mini_flows.discrete import build_model, one_hot_argmax
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig
from mini_flows.optim import Adam
from tests.latent.common import noise, small_model


def test_numpy_scalars_are_numbers_for_tau_kl_weight_and_the_learning_rate():
    logits = B.asarray(np.array([[0.1, 2.0, -1.0]]))
    assert np.array_equal(B.to_numpy(one_hot_argmax(logits, np.float32(0.1))[0]), [[0.0, 1.0, 0.0]])
    assert Adam(lr=np.float32(0.01), eps=np.float64(1e-8)).lr == pytest.approx(0.01)
    model = small_model()
    params = model.init(B.host_rng(0))
    rng = B.host_rng(1)
    x, lengths = rng.integers(0, 4, (2, 4)), np.array([4, 3])
    rec, kl, _ = model.elbo_and_grads(params, x, lengths, noise(rng, 2, 2, 4, model.H), np.float32(0.5))
    assert np.isfinite(B.to_numpy(rec)).all() and np.isfinite(B.to_numpy(kl)).all()


@pytest.mark.parametrize("value", [True, np.bool_(True), 0.0, -1.0, np.inf, np.float32(np.nan), "0.1", None])
def test_non_numbers_and_out_of_range_numbers_are_refused(value):
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        one_hot_argmax(B.asarray(np.zeros((1, 3))), value)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        Adam(lr=value)


def test_build_model_names_the_bad_argument():
    with pytest.raises(ValueError, match="scale must be True or False, got 'yes'"):
        build_model("bipartite", 5, 4, scale="yes")


@pytest.mark.parametrize("dtype,seed,match", [
    ("float16", 0, "dtype must be float32 or float64, got 'float16'"),
    ("int64", 0, "dtype must be float32 or float64"),
    ("no such type", 0, "dtype must be float32 or float64"),
    ("float64", -1, "seed must be None or an integer >= 0, got -1"),
    ("float64", 1.5, "seed must be None or an integer >= 0"),
])
def test_model_init_names_the_bad_dtype_or_seed(dtype, seed, match):
    model = build_model("bipartite", 5, 4)
    with pytest.raises(ValueError, match=match):
        model.init(B.host_rng(seed), dtype)


@pytest.mark.parametrize("rng", [None, 0])
def test_model_init_says_what_rng_must_be(rng):
    """Issue 24, item 10: model.init(None) raised AttributeError from deep inside a block."""
    models = [build_model("bipartite", 5, 4, hidden=8), build_model("autoregressive", 5, 4, hidden=8, network="lstm"),
              small_model(), LSTMBaseline(BaselineConfig(4, 3, embed_size=2, hidden_size=2))]
    for model in models:
        with pytest.raises(TypeError, match=rf"rng must be a random generator such as B.host_rng\(seed\) "
                                            rf"\(numpy.random.Generator\), got {rng}"):
            model.init(rng)


def test_float32_given_as_a_numpy_type_is_accepted():
    model = build_model("bipartite", 5, 4)
    assert model.init(B.host_rng(0), np.float32)["base"]["logits"].dtype == np.float32


@pytest.mark.parametrize("out,message", [("", "--out is empty"), ("FILE", "is a file; name a folder")])
def test_out_must_name_a_folder(tmp_path, capsys, out, message):
    if out == "FILE":
        out = str(tmp_path / "a_file")
        (tmp_path / "a_file").write_text("")
    assert main(["run", "xor", "--quick", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_the_parameters_of_another_model_are_named_by_every_model():
    """Issue 26, item 5: parameters of another model gave a raw matmul error, not the leaf."""
    from mini_flows.continuous.model import build_flow_model
    from mini_flows.latent import LatentConfig, LatentFlowModel
    from mini_flows.latent.baseline import LSTMBaseline
    from mini_flows.latent.config import BaselineConfig

    small = dict(vocab_size=5, max_length=6, embed_size=4, hidden_size=8, num_layers=1)
    pairs = [
        (build_flow_model(2, 2, "affine", hidden_sizes=(8,)), build_flow_model(2, 2, "affine", hidden_sizes=(9,)),
         lambda m, p: m.log_prob(p, B.asarray(np.zeros((3, 2))))),
        (LSTMBaseline(BaselineConfig(**small)), LSTMBaseline(BaselineConfig(**{**small, "hidden_size": 9})),
         lambda m, p: m.sample(p, 2, seed=0)),
        (LatentFlowModel(LatentConfig(**small, prior="af/af", latent_dim=2, flow_hidden_sizes=(8,))),
         LatentFlowModel(LatentConfig(**small, prior="af/af", latent_dim=3, flow_hidden_sizes=(8,))),
         lambda m, p: m.sample(p, 2, seed=0)),
    ]
    for model, other, call in pairs:
        call(model, model.init(B.host_rng(0)))
        with pytest.raises(ValueError, match="params/.* has shape .*: these are the parameters of another model"):
            call(model, other.init(B.host_rng(0)))
