"""ContinuousFlowModel and build_flow_model: normalised (a grid sums p to 1), the loss gradient
equals autograd's, sampling is the base then the flow forward and is reproducible, a model rebuilds
bit for bit from its JSON configuration and from a checkpoint, bad input raises."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.chain import Chain
from mini_flows.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from mini_flows.continuous import AF, SCF, ContinuousFlowModel, FlowStack, NLSqTransform, build_flow_model
from mini_flows.continuous.model import standard_normal_log_prob
from mini_flows.discrete import build_model
from mini_flows.experiments.nlsq import sample_mixture
from mini_flows.nn.tree import flatten, tree_map
from mini_flows.optim import Adam
from mini_flows.train import fit
from mini_flows.testing import assert_grads_close, autograd_grads
from mini_flows.testing.compare import tree_floor

seeds = st.integers(0, 2**32 - 1)


def perturbed(model: ContinuousFlowModel, seed: int, scale: float = 0.15):
    """Parameters moved off the near-identity start, so the flow is clearly not the identity."""
    rng = B.host_rng(seed)
    return tree_map(lambda a: a + B.asarray(scale * rng.standard_normal(a.shape), a.dtype), model.init(rng))


def test_standard_normal_log_prob_is_the_product_of_unit_normals():
    eps = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [3.0, 0.25, -1.5]])
    direct = np.log(np.exp(-0.5 * eps**2) / math.sqrt(2 * math.pi)).sum(axis=1)
    np.testing.assert_allclose(B.to_numpy(standard_normal_log_prob(B.asarray(eps))), direct, rtol=1e-15, atol=0)


@pytest.mark.parametrize("build", [
    *[lambda kind=kind, t=t: build_flow_model(2, 3, t, kind, hidden_sizes=(8,), activation="tanh")
      for kind in ("af", "iaf", "scf") for t in ("affine", "nlsq")],
    lambda: ContinuousFlowModel(2, Chain([AF(2, NLSqTransform(), hidden_sizes=(8,), activation="tanh"),
                                          SCF(2, NLSqTransform(), hidden_sizes=(8,), activation="tanh",
                                              reverse=True)])),
], ids=[f"{kind}-{t}" for kind in ("af", "iaf", "scf") for t in ("affine", "nlsq")] + ["af-then-scf-chain"])
def test_density_integrates_to_one_on_a_grid(build):
    """sum over a fine grid of exp(log p(x)) dx = 1: the base's normalising constant, the flow's
    log-det and their signs together (by enumeration, no autograd)."""
    model = build()
    params = perturbed(model, seed=0)
    grid = np.linspace(-12.0, 12.0, 241)
    x = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    log_p = B.to_numpy(model.log_prob(params, B.asarray(x)))
    eps, logdet, _ = model.flow.inverse(params, B.asarray(x))
    assert np.abs(B.to_numpy(logdet)).max() > 0.1, "the flow is too close to the identity for this test to mean much"
    density = np.exp(log_p).reshape(grid.size, grid.size)
    edge = max(density[[0, -1]].max(), density[:, [0, -1]].max())
    assert edge < 1e-5, f"the grid misses mass: density {edge:.2e} at its edge"
    total = density.sum() * (grid[1] - grid[0]) ** 2
    assert abs(total - 1) < 1e-4, f"integral {total}"


@pytest.mark.autograd
@given(kind=st.sampled_from(["af", "iaf", "scf"]), transform=st.sampled_from(["affine", "nlsq"]),
       dim=st.integers(2, 3), batch=st.integers(1, 5), seed=seeds)
def test_loss_gradient_matches_autograd(kind, transform, dim, batch, seed):
    """The hand-written gradient (base, then the flow's inverse_vjp) equals autograd's on the same
    log_prob code, for every leaf of the parameter tree."""
    model = build_flow_model(dim, 2, transform, kind, hidden_sizes=(6,), activation="tanh")
    params = perturbed(model, seed, scale=0.3)
    x = B.host_rng(seed + 1).standard_normal((batch, dim))
    loss, grads = model.loss_and_grads(params, x)
    assert loss == pytest.approx(-float(np.mean(model.log_prob(params, x))), rel=1e-13)
    (auto,) = autograd_grads(lambda p: -model.log_prob(p, x).mean(), params)
    assert_grads_close(grads, auto, floor=tree_floor(auto))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["af", "iaf", "scf"])
def test_samples_are_the_base_noise_through_the_flow_and_reproducible(kind, dtype):
    model = build_flow_model(3, 2, "nlsq", kind, hidden_sizes=(8,))
    params = perturbed(model, seed=1)
    params = tree_map(lambda a: a.astype(dtype), params)
    x = model.sample(params, 50, seed=7)
    assert x.shape == (50, 3) and x.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(B.to_numpy(x), B.to_numpy(model.sample(params, 50, seed=7)))
    assert not np.array_equal(B.to_numpy(x), B.to_numpy(model.sample(params, 50, seed=8)))
    eps = B.to_numpy(model.flow.inverse(params, x)[0])
    noise = B.to_numpy(B.rng(7).standard_normal((50, 3), dtype=dtype))
    np.testing.assert_allclose(eps, noise, rtol=0, atol=1e-4 if dtype == "float32" else 1e-10)
    log_p = model.log_prob(params, x)
    assert log_p.shape == (50,) and log_p.dtype == np.dtype(dtype) and np.isfinite(B.to_numpy(log_p)).all()
    loss, grads = model.loss_and_grads(params, x)
    assert math.isfinite(loss) and all(g.dtype == np.dtype(dtype) for g in flatten(grads).values())


def test_a_model_rebuilds_from_its_json_configuration():
    model = build_flow_model(2, 3, "nlsq", "scf", hidden_sizes=(8, 4), activation="tanh", alpha=0.8)
    config = json.loads(json.dumps(model.config))
    again = ContinuousFlowModel.from_config(config)
    assert again.config == model.config and again.flow.transform.alpha == 0.8
    x = B.asarray(B.host_rng(0).standard_normal((20, 2)))
    np.testing.assert_array_equal(B.to_numpy(model.log_prob(model.init(B.host_rng(2)), x)),
                                  B.to_numpy(again.log_prob(again.init(B.host_rng(2)), x)))
    assert ContinuousFlowModel(2, FlowStack("af", 2, 1, NLSqTransform())).config is None


def test_a_trained_model_on_the_mixture_rebuilds_bit_for_bit_from_its_checkpoint(tmp_path):
    model = build_flow_model(2, 5, "nlsq", hidden_sizes=(8,))
    rng = B.rng(0)
    params, _ = fit(model.loss_and_grads, model.init(B.host_rng(0)), lambda step: sample_mixture(64, rng), 20,
                    Adam(lr=3e-3))
    path = tmp_path / "model.npz"
    save_checkpoint(path, params, config=model.config)
    again = ContinuousFlowModel.from_config(checkpoint_config(path))
    same = load_checkpoint(path, like=again.init(B.host_rng(1)), config=again.config)
    x = sample_mixture(100, rng)
    np.testing.assert_array_equal(B.to_numpy(model.log_prob(params, x)), B.to_numpy(again.log_prob(same, x)))
    np.testing.assert_array_equal(B.to_numpy(model.sample(params, 10, seed=3)),
                                  B.to_numpy(again.sample(same, 10, seed=3)))
    with pytest.raises(ValueError, match="model.npz is a checkpoint of another model: its transform is 'nlsq', "
                                         "the model's is 'affine'"):
        load_checkpoint(path, config={**model.config, "transform": "affine"})


@pytest.mark.parametrize("x,error,match", [
    (np.zeros((4, 3)), ValueError, r"x must have shape \(\*, 2\), got \(4, 3\)"),
    (np.zeros(2), ValueError, r"x must have shape \(\*, 2\), got \(2,\)"),
    (np.zeros((4, 2), np.int64), TypeError, "x must be a float32 or float64 array"),
    (np.zeros((4, 2), np.float32), TypeError, "x is float32 but the parameters are float64"),
    (np.array([[0.0, np.nan]]), ValueError, "x contains NaN or infinity"),
])
def test_model_rejects_bad_x(x, error, match):
    model = build_flow_model(2, 2, "nlsq", hidden_sizes=(4,))
    params = model.init(B.host_rng(0))
    with pytest.raises(error, match=match):
        model.log_prob(params, B.asarray(x))
    with pytest.raises(error, match=match):
        model.loss_and_grads(params, B.asarray(x))


def test_model_rejects_an_empty_training_batch_and_n_below_one():
    model = build_flow_model(2, 2, "affine", hidden_sizes=(4,))
    params = model.init(B.host_rng(0))
    assert model.log_prob(params, B.asarray(np.zeros((0, 2)))).shape == (0,)
    with pytest.raises(ValueError, match=r"x is an empty batch \(shape \(0, 2\)\)"):
        model.loss_and_grads(params, B.asarray(np.zeros((0, 2))))
    for n in (0, -1, 2.0):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            model.sample(params, n)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(transform="spline"), ValueError, "unknown transform 'spline'; choose from 'affine', 'nlsq'"),
    (dict(kind="none"), ValueError, "unknown layer kind 'none'; .* no context for the elementwise kind"),
    (dict(kind="maf"), ValueError, "unknown layer kind 'maf'"),
    (dict(transform="affine", alpha=0.5), ValueError, "alpha applies to transform='nlsq' only"),
    (dict(alpha=1.0), ValueError, r"alpha must be a number in \(0, 1\)"),
    (dict(hidden_sizes=8), ValueError, "hidden_sizes must be a list or tuple of layer sizes, got 8"),
    (dict(hidden_sizes=(0,)), ValueError, r"hidden_sizes\[0\] must be an integer >= 1"),
    (dict(num_layers=0), ValueError, "num_layers must be an integer >= 1"),
    (dict(dim=0), ValueError, "dim must be an integer >= 1"),
    (dict(dim=1, kind="scf"), ValueError, "SCF needs dim >= 2"),
    (dict(activation="swish"), ValueError, "swish"),
])
def test_build_flow_model_rejects_bad_configuration(kwargs, error, match):
    args = dict(dim=2, num_layers=2, transform="nlsq") | kwargs
    with pytest.raises(error, match=match):
        build_flow_model(**args)


def test_model_rejects_a_flow_of_another_shape():
    with pytest.raises(ValueError, match="flow has dim 3 but the model has dim 2"):
        ContinuousFlowModel(2, FlowStack("af", 3, 1, NLSqTransform()))
    with pytest.raises(ValueError, match="flow must take no context, got one with cond_size=3"):
        ContinuousFlowModel(2, FlowStack("af", 2, 1, NLSqTransform(), cond_size=3))
    with pytest.raises(ValueError, match=r"flow must be a bijection of vectors \(event_ndim 1\), got Chain with "
                                         "event_ndim 2"):
        ContinuousFlowModel(2, build_model("bipartite", 3, 2, network="mlp").chain)
