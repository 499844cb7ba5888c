"""Figure 5a, b of Ziegler and Rush (2019): four hand-chosen NLSq layers turn N(0, 1) into a
multimodal density, which no composition of affine maps can do (it only shifts and scales).

Each layer f(x) = a + b x + c / (1 + (d x + g)^2) is strictly increasing (|c| d / b < 8 sqrt 3 / 9);
its slope dips to b (1 - alpha) at x* = (sign(c) / sqrt 3 - g) / d, and a dip in the slope of the
sampling map is a bump in the density: p(z) = N(f^-1(z)) |d f^-1 / dz|. Here three layers put
such dips at different points and a fourth, with a negative bump and b = 2, stretches them apart
(``mini_flows.experiments.nlsq``, which ``mini-flows run nlsq1d`` also runs). The density is
evaluated on a grid of z by the analytic inverse (the cubic), layer by layer; the script prints
the layers, the modes it finds on the grid, the grid's total mass (1 up to the quadrature error),
and saves (a) the composed map z = f(eps) and (b) the base and final densities as a PNG where
matplotlib is installed.

    python examples/nlsq_multimodal.py [--backend numpy|cupy] [--out FILE.png]
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.continuous.cubic import K_MAX  # noqa: E402
from mini_flows.experiments.figures import no_plot_note, plot  # noqa: E402
from mini_flows.experiments.nlsq import LAYERS, density, draw_1d, find_modes, hand_set_layers, sample_map, trapezoid  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    parser.add_argument("--out", default="mini-flows-results/examples/nlsq_multimodal.png",
                        help="PNG file for the figure")
    args = parser.parse_args(argv)
    B.set_backend(args.backend)
    xp = B.xp()

    layers = hand_set_layers()
    print("layer  a       b       c       d       g        least slope   role")
    for i, (f, (role, *_)) in enumerate(zip(layers, LAYERS), 1):
        a, b, c, d, g = (float(B.to_numpy(v)[0]) for v in (f.a, f.b, f.c, f.d, f.g))
        least = b * (1 - abs(c) * d / b / K_MAX)
        print(f"{i:>5}  {a:6.3f}  {b:6.3f}  {c:6.3f}  {d:6.3f}  {g:7.3f}  {least:11.3f}   {role}")

    eps = xp.linspace(-4, 4, 801)
    z_of_eps = sample_map(layers, eps)
    low, high = (float(v) for v in sample_map(layers, B.asarray([-9.0, 9.0])))  # N(0, 1) mass outside: 2e-19
    z = xp.linspace(low, high, 200_001)
    p = density(layers, z)
    modes = find_modes(p)
    print(f"\ndensity of z on a grid of {z.size} points over [{low:.2f}, {high:.2f}]:")
    print(f"  total mass (trapezoid)   {trapezoid(p, z):.8f}")
    print(f"  modes found              {len(modes)} at z = " + ", ".join(f"{float(v):.3f}" for v in z[modes]))
    print("  their densities          " + ", ".join(f"{float(v):.3f}" for v in p[modes]))
    verdict = "multimodal" if len(modes) >= 2 else "NOT multimodal"
    print(f"  the base N(0, 1) has 1 mode; after four NLSq layers the density is {verdict} ({len(modes)} modes)")
    saved = plot(Path(args.out), draw_1d(eps, z_of_eps, z, p))
    print(f"saved the plot to {args.out}" if saved else no_plot_note(args.out))


if __name__ == "__main__":
    main()
