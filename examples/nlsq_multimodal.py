"""Figure 5a, b of Ziegler and Rush (2019): four hand-chosen NLSq layers turn N(0, 1) into a
multimodal density, which no composition of affine maps can do (it only shifts and scales).

Each layer f(x) = a + b x + c / (1 + (d x + g)^2) is strictly increasing (|c| d / b < 8 sqrt 3 / 9);
its slope dips to b (1 - alpha) at x* = (sign(c) / sqrt 3 - g) / d, and a dip in the slope of the
sampling map is a bump in the density: p(z) = N(f^-1(z)) |d f^-1 / dz|. Here three layers put
such dips at different points and a fourth, with a negative bump and b = 2, stretches them apart. The
density is evaluated on a grid of z by the analytic inverse (the cubic), layer by layer; the
script prints the layers, the modes it finds on the grid, the grid's total mass (1 up to the
quadrature error), and saves (a) the composed map z = f(eps) and (b) the base and final densities
as a PNG where matplotlib is installed.

    python examples/nlsq_multimodal.py [--backend numpy|cupy] [--out nlsq_multimodal.png]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from mini_flows import backend as B
from mini_flows.continuous.cubic import K_MAX
from mini_flows.continuous.scalar import NLSq


def layer(x_star: float, d: float, alpha: float, b: float = 1.0, a: float = 0.0) -> NLSq:
    """An NLSq layer whose least slope, b (1 - |alpha|), lies at x = x_star; alpha in (-1, 1) sets
    the bump's size and sign (c = alpha K_MAX b / d)."""
    g = math.copysign(1 / math.sqrt(3), alpha) - d * x_star  # s = d x + g = sign(c) / sqrt 3 at x_star
    return NLSq(*(B.asarray(np.array([v])) for v in (a, b, alpha * K_MAX * b / d, d, g)))


LAYERS = [  # x_star in each layer's own input coordinate
    ("slope dip at x = -1.2", dict(x_star=-1.2, d=1.5, alpha=0.7)),
    ("slope dip at x = 0", dict(x_star=0.0, d=1.5, alpha=0.7)),
    ("slope dip at x = 1.2", dict(x_star=1.2, d=1.5, alpha=0.7)),
    ("negative bump, widen x2", dict(x_star=0.0, d=0.5, alpha=-0.6, b=2.0)),
]


def sample_map(layers: list[NLSq], eps: np.ndarray) -> np.ndarray:
    """z = f_4(f_3(f_2(f_1(eps)))), the closed forms."""
    z = B.asarray(eps)
    for f in layers:
        z, _ = f.forward(z)
    return B.to_numpy(z)


def density(layers: list[NLSq], z: np.ndarray) -> np.ndarray:
    """p(z) = N(eps) prod_l |d f_l^-1 / dz_l|, inverting the layers last to first (the cubic)."""
    x, log_p = B.asarray(z), B.asarray(np.zeros_like(z))
    for f in reversed(layers):
        x, logdet = f.inverse(x)
        log_p = log_p + logdet
    x, log_p = B.to_numpy(x), B.to_numpy(log_p)
    return np.exp(log_p - 0.5 * x**2 - 0.5 * math.log(2 * math.pi))


def find_modes(z: np.ndarray, p: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Grid points higher than both neighbours and than floor * max p."""
    inner = (p[1:-1] > p[:-2]) & (p[1:-1] > p[2:]) & (p[1:-1] > floor * p.max())
    return np.flatnonzero(inner) + 1


def save_plot(path: str, eps: np.ndarray, z_of_eps: np.ndarray, z: np.ndarray, p: np.ndarray) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: skipping the plot {path} (pip install 'mini-flows[plot]')")
        return
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 4))
    ax_a.plot(eps, z_of_eps, color="black")
    ax_a.set(title="(a) composed transform", xlabel="eps", ylabel="z = f(eps)")
    ax_b.plot(z, np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi), color="red", label="base N(0, 1)")
    ax_b.plot(z, p, color="blue", label="after 4 NLSq layers")
    ax_b.set(title="(b) densities", xlabel="value", ylabel="density", xlim=(z_of_eps[0], z_of_eps[-1]))
    ax_b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"saved the plot to {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    parser.add_argument("--out", default="nlsq_multimodal.png", help="PNG file for the figure")
    args = parser.parse_args(argv)
    B.set_backend(args.backend)

    layers = []
    print("layer  a       b       c       d       g        least slope   role")
    for i, (role, config) in enumerate(LAYERS, 1):
        f = layer(**config)
        layers.append(f)
        a, b, c, d, g = (float(B.to_numpy(v)[0]) for v in (f.a, f.b, f.c, f.d, f.g))
        least = b * (1 - abs(c) * d / b / K_MAX)
        print(f"{i:>5}  {a:6.3f}  {b:6.3f}  {c:6.3f}  {d:6.3f}  {g:7.3f}  {least:11.3f}   {role}")

    eps = np.linspace(-4, 4, 801)
    z_of_eps = sample_map(layers, eps)
    low, high = sample_map(layers, np.array([-9.0, 9.0]))  # N(0, 1) mass outside: 2e-19
    z = np.linspace(low, high, 200_001)
    p = density(layers, z)
    modes = find_modes(z, p)
    print(f"\ndensity of z on a grid of {z.size} points over [{low:.2f}, {high:.2f}]:")
    print(f"  total mass (trapezoid)   {np.trapezoid(p, z):.8f}")
    print(f"  modes found              {len(modes)} at z = " + ", ".join(f"{v:.3f}" for v in z[modes]))
    print(f"  their densities          " + ", ".join(f"{v:.3f}" for v in p[modes]))
    verdict = "multimodal" if len(modes) >= 2 else "NOT multimodal"
    print(f"  the base N(0, 1) has 1 mode; after four NLSq layers the density is {verdict} ({len(modes)} modes)")
    save_plot(args.out, eps, z_of_eps, z, p)


if __name__ == "__main__":
    main()
