"""Figure 5 of Ziegler and Rush (2019): the NLSq transform makes multimodal densities.

nlsq1d (Figure 5a, b): four hand-chosen NLSq layers turn N(0, 1) into a multimodal density, which
no composition of affine maps can do (it only shifts and scales). Each layer
f(x) = a + b x + c / (1 + (d x + g)^2) is strictly increasing (|c| d / b < 8 sqrt 3 / 9); its
slope dips to b (1 - alpha) at x* = (sign(c) / sqrt 3 - g) / d, and a dip in the slope of the
sampling map is a bump in the density: p(z) = N(f^-1(z)) |d f^-1 / dz|. Three layers put such
dips at different points and a fourth, with a negative bump and b = 2, stretches them apart. The
density is evaluated on a grid of z by the analytic inverse (the cubic), layer by layer.

nlsq2d (Figure 5c): a 5-layer 2-D autoregressive flow (MADE per layer, order reversed between
layers) on a standard normal base, a ``ContinuousFlowModel``, learns a mixture of four Gaussians
(std 0.4, centred at (+-2, +-2)) by maximum likelihood, once with NLSq transforms and once with
affine ones. Reported: test NLLs beside the mixture's entropy (Monte Carlo from the known
density), the flow's mass near the four centres and the local maxima of its density on a grid.
The affine flow must fold one Gaussian into four modes with steep, thin folds; NLSq's bumps make
them unnecessary.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.continuous import ContinuousFlowModel, NLSq, build_flow_model
from mini_flows.continuous.cubic import K_MAX
from mini_flows.experiments.figures import heatmaps, save_figure
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.nn.tree import Tree
from mini_flows.optim import Adam
from mini_flows.train import Progress, fit

LAYERS = [  # (role, x_star in the layer's own input coordinate, d, alpha, b)
    ("slope dip at x = -1.2", -1.2, 1.5, 0.7, 1.0),
    ("slope dip at x = 0", 0.0, 1.5, 0.7, 1.0),
    ("slope dip at x = 1.2", 1.2, 1.5, 0.7, 1.0),
    ("negative bump, widen x2", 0.0, 0.5, -0.6, 2.0),
]
CENTRES = [(-2.0, -2.0), (-2.0, 2.0), (2.0, -2.0), (2.0, 2.0)]
STD, LIMIT = 0.4, 4.0  # component standard deviation; the images show [-LIMIT, LIMIT]^2


def layer(x_star: float, d: float, alpha: float, b: float = 1.0, a: float = 0.0) -> NLSq:
    """An NLSq layer whose least slope, b (1 - |alpha|), lies at x = x_star; alpha in (-1, 1) sets
    the bump's size and sign (c = alpha K_MAX b / d)."""
    g = math.copysign(1 / math.sqrt(3), alpha) - d * x_star  # s = d x + g = sign(c) / sqrt 3 at x_star
    return NLSq(*(B.asarray([v]) for v in (a, b, alpha * K_MAX * b / d, d, g)))


def hand_set_layers() -> list[NLSq]:
    """The four layers of ``LAYERS``."""
    return [layer(x_star, d, alpha, b) for _, x_star, d, alpha, b in LAYERS]


def sample_map(layers: list[NLSq], eps: Array) -> Array:
    """z = f_4(f_3(f_2(f_1(eps)))), the closed forms."""
    z = B.asarray(eps)
    for f in layers:
        z, _ = f.forward(z)
    return z


def density(layers: list[NLSq], z: Array) -> Array:
    """p(z) = N(eps) prod_l |d f_l^-1 / dz_l|, inverting the layers last to first (the cubic)."""
    xp = B.xp()
    x, log_p = B.asarray(z), xp.zeros_like(B.asarray(z))
    for f in reversed(layers):
        x, logdet = f.inverse(x)
        log_p = log_p + logdet
    return xp.exp(log_p - 0.5 * x**2 - 0.5 * math.log(2 * math.pi))


def find_modes(p: Array, floor: float = 1e-3) -> Array:
    """Indices of the grid points of a 1-D density higher than both neighbours and than floor * max p."""
    inner = (p[1:-1] > p[:-2]) & (p[1:-1] > p[2:]) & (p[1:-1] > floor * p.max())
    return B.xp().flatnonzero(inner) + 1


def trapezoid(p: Array, z: Array) -> float:
    """The trapezoid rule's integral of p over the grid z."""
    return float(((p[1:] + p[:-1]) * (z[1:] - z[:-1])).sum() / 2)


def run_1d(settings: Settings) -> Report:
    """Figure 5a, b: the hand-set layers' density, its modes and mass, against N(0, 1)'s one mode."""
    xp = B.xp()
    layers = hand_set_layers()
    eps = xp.linspace(-4, 4, 801)
    z_of_eps = sample_map(layers, eps)
    low, high = (float(v) for v in sample_map(layers, B.asarray([-9.0, 9.0])))  # N(0, 1) mass outside: 2e-19
    z = xp.linspace(low, high, 20_001 if settings.quick else 200_001)
    p = density(layers, z)
    modes = find_modes(p)
    base = xp.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    base_modes = find_modes(base)
    rows = [["N(0, 1) base", cell(int(base_modes.size)), cell(trapezoid(base, z), digits=6),
             cell(", ".join(f"{float(v):.2f}" for v in z[base_modes]))],
            ["4 affine layers (any)", cell(1, 1), cell("1.000000"), cell("-")],
            ["4 hand-set NLSq layers", cell(int(modes.size), "multimodal"), cell(trapezoid(p, z), digits=6),
             cell(", ".join(f"{float(v):.2f}" for v in z[modes]))]]
    table = Table("Ziegler and Rush 2019, Figure 5a, b: N(0, 1) through four NLSq layers",
                  ["modes", "total mass (grid)", "mode locations z"], rows,
                  note="the paper's figure in words, in parentheses")
    notes = [f"density on a grid of {z.size} points over [{low:.2f}, {high:.2f}] by the analytic inverse; "
             "an affine map of a Gaussian is a Gaussian, so affine layers keep one mode",
             "layers: " + "; ".join(f"{role} (b = {b}, d = {d}, alpha = {alpha})" for role, _, d, alpha, b in LAYERS)]
    report = Report(table, notes, results={"modes": [float(v) for v in z[modes]],
                                           "mode_densities": [float(v) for v in p[modes]],
                                           "mass": trapezoid(p, z)})
    save_figure(settings, "nlsq1d.png", draw_1d(eps, z_of_eps, z, p), report)
    return report


def draw_1d(eps: Array, z_of_eps: Array, z: Array, p: Array) -> Callable[[Any], None]:
    """Figure 5a (the composed map) and 5b (the base and final densities) as plt -> None."""
    eps, z_of_eps, z, p = (B.to_numpy(a) for a in (eps, z_of_eps, z, p))

    def draw(plt: Any) -> None:
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 4))
        ax_a.plot(eps, z_of_eps, color="black")
        ax_a.set(title="(a) composed transform", xlabel="eps", ylabel="z = f(eps)")
        ax_b.plot(z, [math.exp(-0.5 * v * v) / math.sqrt(2 * math.pi) for v in z], color="red", label="base N(0, 1)")
        ax_b.plot(z, p, color="blue", label="after 4 NLSq layers")
        ax_b.set(title="(b) densities", xlabel="value", ylabel="density", xlim=(z_of_eps[0], z_of_eps[-1]))
        ax_b.legend()
        fig.tight_layout()
    return draw


def sample_mixture(n: int, rng: Any) -> Array:
    """n points (n, 2) from the equally weighted mixture, with a backend generator."""
    centres = B.asarray(CENTRES)
    return centres[rng.integers(0, len(CENTRES), size=n)] + STD * rng.standard_normal((n, 2))


def mixture_log_prob(x: Array) -> Array:
    """log p(x) : (n,) of the known mixture, by log-sum-exp over its components."""
    xp = B.xp()
    sq = ((x[:, None, :] - B.asarray(CENTRES)[None]) ** 2).sum(-1) / STD**2
    log_comp = -0.5 * sq - math.log(2 * math.pi * STD**2) - math.log(len(CENTRES))
    top = log_comp.max(axis=1, keepdims=True)
    return (top + xp.log(xp.exp(log_comp - top).sum(axis=1, keepdims=True)))[:, 0]


def train_flow(model: ContinuousFlowModel, params: Tree, steps: int, rng: Any, reporter: Progress, batch: int = 256,
               lr: float = 3e-3) -> Tree:
    """Maximum likelihood with Adam (clip 5) on ``batch`` fresh samples per step; the trained params."""
    return fit(model.loss_and_grads, params, lambda step: sample_mixture(batch, rng), steps,
               Adam(lr=lr, clip_norm=5.0), reporter=reporter)[0]


def guarded_log_prob(model: ContinuousFlowModel, params: Tree, x: Array) -> Array:
    """log p(x) : (n,) where the flow is finite, -inf where it overflows (a steep affine fold can
    send far-out points to infinity): halves a batch that fails until the failing points are alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the overflow is handled here
            return model.log_prob(params, x)
    except ValueError:
        if x.shape[0] == 1:
            return B.xp().full(1, -math.inf)
        half = x.shape[0] // 2
        return B.xp().concatenate([guarded_log_prob(model, params, x[:half]),
                                   guarded_log_prob(model, params, x[half:])])


def grid(n: int) -> tuple[Array, Array]:
    """(the 1-D grid over [-LIMIT, LIMIT] of n points, its n^2 cells (n^2, 2) indexed [x1, x2])."""
    xp = B.xp()
    g = xp.linspace(-LIMIT, LIMIT, n)
    return g, xp.stack([xp.repeat(g, n), xp.tile(g, n)], axis=1)


def density_image(log_prob: Callable[[Array], Array], n: int = 200) -> Array:
    """exp(log_prob) on an n x n grid over [-LIMIT, LIMIT]^2, (n, n) indexed [x1, x2]."""
    return B.xp().exp(log_prob(grid(n)[1])).reshape(n, n)


def mass_near_centres(image: Array, radius: float = 2 * STD) -> list[float]:
    """The image's probability mass (cell area times density) within ``radius`` of each centre."""
    n = image.shape[0]
    g, cells = grid(n)
    area = float(g[1] - g[0]) ** 2
    flat = image.reshape(-1)
    return [float(flat[((cells[:, 0] - cx) ** 2 + (cells[:, 1] - cy) ** 2) <= radius**2].sum()) * area
            for cx, cy in CENTRES]


def run_2d(settings: Settings) -> Report:
    """Figure 5c: the 5-layer AF with NLSq and with affine transforms on the 4-Gaussian mixture."""
    steps = settings.pick_steps(2000, 10)
    hidden = 8 if settings.quick else 64
    rng = B.rng(settings.seed)
    test = sample_mixture(2000 if settings.quick else 20000, rng)
    entropy = -float(mixture_log_prob(sample_mixture(20000 if settings.quick else 200000, rng)).mean())
    true_image = density_image(mixture_log_prob)
    images = [("true mixture", true_image)]
    masses = mass_near_centres(true_image)
    rows = [["true mixture", cell(entropy), cell(sum(masses)), cell(" / ".join(f"{m:.2f}" for m in masses))]]
    results: dict[str, Any] = {"entropy": entropy, "steps": steps}
    verdicts = {"NLSq": "learns the 4 modes", "affine": "fails"}
    settings.clock.plan(2 * steps)
    for name, transform in (("NLSq", "nlsq"), ("affine", "affine")):
        model = build_flow_model(2, 5, transform, hidden_sizes=(hidden,))
        label = f"5-layer AF, {name}"
        params = train_flow(model, model.init(B.host_rng(settings.seed)), steps, rng,
                            settings.progress(label, steps, unit="nats/point"))
        settings.keep_model(label, model, params)
        log_prob = lambda x: guarded_log_prob(model, params, x)  # noqa: E731
        nll = -float(log_prob(test).mean())
        image = density_image(log_prob)
        masses = mass_near_centres(image)
        rows.append([label, cell(nll), cell(sum(masses)),
                     cell(" / ".join(f"{m:.2f}" for m in masses), verdicts[name])])
        images.append((label, image))
        results[name] = {"test_nll": nll, "excess": nll - entropy, "mass_near_centres": masses}
    table = Table("Ziegler and Rush 2019, Figure 5c: 5-layer 2-D AF on a mixture of four Gaussians",
                  ["test NLL (nats)", "mass within 2 std of a centre", "... of each centre"], rows,
                  note="the paper's figure in words, in parentheses")
    notes = [f"{steps} Adam steps of 256 fresh samples per flow (MADE of {hidden} units per layer); true-mixture row: "
             "its entropy (Monte Carlo) and its own mass near the centres",
             f"excess NLL over the entropy: NLSq {results['NLSq']['excess']:.3f}, "
             f"affine {results['affine']['excess']:.3f} nats"]
    report = Report(table, notes, results=results)
    save_figure(settings, "nlsq2d.png", draw_2d(images), report)
    return report


def draw_2d(images: list[tuple[str, Array]]) -> Callable[[Any], None]:
    """The density images side by side, as plt -> None."""
    return heatmaps(images, (-LIMIT, LIMIT, -LIMIT, LIMIT), ("z1", "z2"), "density p(z1, z2)")
