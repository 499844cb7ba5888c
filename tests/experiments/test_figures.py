"""What the figure experiments compute: the XOR tables, the mixture-of-Gaussians measures, the
NLSq densities and the timing statistics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.continuous import build_flow_model
from mini_flows.data import mog_samples, mog_table
from mini_flows.experiments import mog2d, nlsq, xor
from mini_flows.experiments.timing import mean_ci


def test_xor_hand_set_flow_gives_the_papers_table():
    base, flow = xor.tables(*xor.xor_model())
    np.testing.assert_allclose(base, [[0.63, 0.07], [0.27, 0.03]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(flow, xor.PAPER_TABLE, rtol=0, atol=1e-15)
    assert "x1 = 1    0.03    0.27" in xor.format_table("t", flow)


def test_mog_measures():
    tokens = mog_samples(3000, 0)
    p = B.to_numpy(mog2d.histogram(tokens))
    assert p.shape == (90, 90) and abs(p.sum() - 1) < 1e-12 and (p > 0).sum() <= 3000
    assert math.isclose(mog2d.entropy(B.asarray([0.5, 0.5, 0.0])), math.log(2))
    truth = mog_table()
    near = B.to_numpy(mog2d.near_modes())
    assert 0.985 < truth[near].sum() < 0.995  # P(r < 3 std) = 1 - exp(-4.5) for a 2-D Gaussian
    product = truth.sum(1)[:, None] * truth.sum(0)[None, :]
    assert abs(product[near].sum() - 3 / 8) < 0.01  # the best factorized fit
    cells = B.to_numpy(mog2d.all_cells())
    assert np.array_equal(cells[91], [1, 1]) and np.array_equal(cells[-1], [89, 89])


def test_nlsq_layers_make_a_normalised_multimodal_density():
    layers = nlsq.hand_set_layers()
    low, high = (float(v) for v in nlsq.sample_map(layers, B.asarray([-9.0, 9.0])))
    z = B.xp().linspace(low, high, 20001)
    p = nlsq.density(layers, z)
    assert abs(nlsq.trapezoid(p, z) - 1) < 1e-6
    assert len(nlsq.find_modes(p)) >= 2
    assert len(nlsq.find_modes(B.xp().exp(-0.5 * z**2))) == 1


def test_mixture_density_and_mass_near_the_centres():
    image = nlsq.density_image(nlsq.mixture_log_prob, 200)
    cell = (2 * nlsq.LIMIT / 199) ** 2
    assert abs(float(image.sum()) * cell - 1) < 1e-4
    for mass in nlsq.mass_near_centres(image):
        assert abs(mass - (1 - math.exp(-2)) / 4) < 2e-3  # P(r < 2 std) of a 2-D Gaussian, per centre


def test_guarded_log_prob_marks_overflowing_points_minus_infinity():
    model = build_flow_model(2, 3, "affine", hidden_sizes=(4,))
    params = model.init(B.host_rng(0))
    for layer in params.values():  # output units (a_0, log b_0, a_1, log b_1): b ~ e^200 per layer
        out = layer["made"]["layer_1"]
        out["b"] = out["b"] + B.asarray([0.0, 200.0, 0.0, 200.0])
    x = B.asarray([[0.0, 0.0], [1e-3, 0.0], [3.0, -2.0]])  # (0, 0) stays finite; the others reach inf
    with pytest.raises(ValueError, match="NaN or infinity"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.log_prob(params, x)
    log_p = B.to_numpy(nlsq.guarded_log_prob(model, params, x))
    assert np.isfinite(log_p[0]) and np.isneginf(log_p[1:]).all()


def test_mean_ci():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 1.96 / math.sqrt(3))
    assert mean_ci([5.0]) == (5.0, 0.0)
