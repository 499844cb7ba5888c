"""AF, IAF, SCF and elementwise flow layers, alone and stacked: triangular Jacobians, the coupling's
two gradient paths, normalisation by quadrature, order alternation, float32, bad input. Round trips,
log-dets against autograd's Jacobian and backward passes are checked for every layer by the shared
harness, tests/test_bijections.py."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.continuous.layers import AF, IAF, SCF, Elementwise
from mini_flows.continuous.scalar import AffineTransform, NLSqTransform
from mini_flows.continuous.stack import FlowStack
from mini_flows.nn.tree import tree_map

pytestmark = pytest.mark.autograd

seeds = st.integers(0, 2**32 - 1)
TRANSFORMS = {"affine": AffineTransform, "nlsq": NLSqTransform}


@pytest.mark.parametrize("layer_cls", [AF, IAF])
@given(seed=seeds, dim=st.integers(2, 4), reverse=st.booleans())
def test_autoregressive_jacobian_is_triangular_in_the_order(layer_cls, seed, dim, reverse):
    """d eps_i / d z_j = 0 whenever j comes after i: lower triangular, upper when reversed."""
    rng = B.host_rng(seed)
    layer = layer_cls(dim, NLSqTransform(), hidden_sizes=(6,), reverse=reverse, activation="tanh")
    params = tree_map(lambda a: a + 0.3 * rng.standard_normal(a.shape), layer.init(rng))
    z = rng.standard_normal(dim)
    with B.use_autograd():
        J = np.asarray(autograd.jacobian(lambda z: layer.inverse(params, z)[0])(z))
    later = np.triu(np.ones((dim, dim), bool), 1)
    assert np.all(J[later.T if reverse else later] == 0)
    assert np.any(J[later if reverse else later.T] != 0)


@given(seed=seeds, dim=st.integers(2, 5), reverse=st.booleans(), transform=st.sampled_from(sorted(TRANSFORMS)))
def test_scf_kept_half_passes_through_and_gets_both_gradients(seed, dim, reverse, transform):
    rng = B.host_rng(seed)
    layer = SCF(dim, TRANSFORMS[transform](), hidden_sizes=(6,), reverse=reverse, activation="tanh")
    params = layer.init(rng)
    z = rng.standard_normal((3, dim))
    eps, logdet, cache = layer.inverse(params, z)
    kept = layer.kept
    np.testing.assert_array_equal(eps[:, kept], z[:, kept])
    deps = rng.standard_normal(eps.shape)
    _, dz, _ = layer.inverse_vjp(params, cache, deps, np.zeros(3))
    through_net = dz[:, kept] - deps[:, kept]  # what the network path adds to the identity path
    assert np.all(np.abs(through_net).sum(axis=1) > 0)


@pytest.mark.parametrize("kind", ["af", "iaf", "scf"])
@pytest.mark.parametrize("seed", [0, 1])
def test_2d_flow_integrates_to_one(kind, seed):
    """sum over a fine grid of exp(log N(eps) + logdet) dz = 1 for a 3-layer 2-D NLSq flow."""
    flow = FlowStack(kind, 2, 3, NLSqTransform(), hidden_sizes=(8,), activation="tanh")
    rng = B.host_rng(seed)
    # init starts near the identity: perturb it into a clearly non-trivial flow that keeps its mass on the grid
    params = tree_map(lambda a: a + 0.15 * rng.standard_normal(a.shape), flow.init(rng))
    grid = np.linspace(-12.0, 12.0, 241)
    z = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    eps, logdet, _ = flow.inverse(params, z)
    assert np.abs(logdet).max() > 0.1, "the flow is too close to the identity for this test to mean much"
    density = np.exp(-0.5 * (eps**2).sum(-1) - np.log(2 * np.pi) + logdet).reshape(grid.size, grid.size)
    edge = max(density[[0, -1]].max(), density[:, [0, -1]].max())
    assert edge < 1e-5, f"the grid misses mass: density {edge:.2e} at its edge"
    total = density.sum() * (grid[1] - grid[0]) ** 2
    assert abs(total - 1) < 1e-4, f"integral {total}"


def test_stack_reverses_the_order_between_layers():
    flow = FlowStack("af", 3, 3, AffineTransform())
    assert [layer.made.order for layer in flow.layers] == [(0, 1, 2), (2, 1, 0), (0, 1, 2)]
    scf = FlowStack("scf", 3, 2, AffineTransform())
    assert [(layer.kept, layer.changed) for layer in scf.layers] == [(slice(0, 1), slice(1, 3)), (slice(1, 3), slice(0, 1))]


@pytest.mark.parametrize("kind", ["af", "iaf", "scf", "none"])
def test_float32_stays_float32(kind):
    flow = FlowStack(kind, 3, 2, NLSqTransform(), cond_size=2, hidden_sizes=(4,))
    params = flow.init(B.host_rng(0), dtype="float32")
    rng = B.host_rng(1)
    eps, cond = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    z, logdet, _ = flow.forward(params, eps, cond)
    eps_back, _, _ = flow.inverse(params, z, cond)
    assert z.dtype == logdet.dtype == eps_back.dtype == np.float32
    np.testing.assert_allclose(eps_back, eps, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda f, p: f.inverse(p, np.ones((2, 4)), np.ones((2, 2))), ValueError, r"shape \(\*, 3\)"),
        (lambda f, p: f.inverse(p, np.ones((2, 3)), np.ones((2, 5))), ValueError, r"cond must have shape \(2, 2\)"),
        (lambda f, p: f.forward(p, np.ones((2, 3)), None), ValueError, "cond is required"),
        (lambda f, p: f.inverse(p, np.full((2, 3), np.nan), np.ones((2, 2))), ValueError, "NaN"),
        (lambda f, p: f.inverse(p, np.ones((2, 3), np.float32), np.ones((2, 2))), TypeError, "parameters are float64"),
        (lambda f, p: f.inverse(p, np.ones((2, 3), int), np.ones((2, 2))), TypeError, "float32 or float64"),
    ],
)
@pytest.mark.parametrize("kind", ["af", "iaf", "scf", "none"])
def test_bad_input_raises(kind, make, error, match):
    flow = FlowStack(kind, 3, 2, AffineTransform(), cond_size=2, hidden_sizes=(4,))
    with pytest.raises(error, match=match):
        make(flow, flow.init(B.host_rng(0)))


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="cond must be None"):
        layer = AF(2, AffineTransform())
        layer.inverse(layer.init(B.host_rng(0)), np.ones((1, 2)), np.ones((1, 1)))
    with pytest.raises(ValueError, match="dim >= 2"):
        SCF(1, AffineTransform())
    with pytest.raises(ValueError, match="cond_size must be an integer >= 1"):
        Elementwise(3, AffineTransform(), cond_size=0)
    with pytest.raises(ValueError, match="unknown layer kind"):
        FlowStack("maf", 3, 2, AffineTransform())
    with pytest.raises(ValueError, match="num_layers"):
        FlowStack("af", 3, 0, AffineTransform())
    with pytest.raises(TypeError, match="AffineTransform or NLSqTransform"):
        AF(3, "nlsq")
