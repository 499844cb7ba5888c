"""Figure 5c of Ziegler and Rush (2019): a 5-layer 2-D autoregressive flow with NLSq transforms
learns a mixture of four Gaussians; the same flow with affine transforms does not.

The data: four Gaussians of standard deviation 0.4 centred at (+-2, +-2), equally weighted. Both
flows map data z to base eps ~ N(0, I) through 5 AF layers (the order reversed between layers),
each a MADE giving the raw parameters of every dimension's scalar transform; they differ only in
the transform: NLSq, f(x) = a + b x + c / (1 + (d x + g)^2), or affine, f(x) = a + b x. Each is a
``ContinuousFlowModel`` (``build_flow_model(2, 5, "nlsq")``: the base N(0, I) and the flow) and
trains by maximum likelihood with Adam on fresh samples (``mini_flows.experiments.nlsq``, which
``mini-flows run nlsq2d`` also runs). The script prints both test NLLs beside the mixture's
entropy (the lowest NLL any model can reach; estimated by Monte Carlo from the known density) and
saves the three density images as a PNG where matplotlib is installed. The affine flow's running
loss spikes now and then: to split one Gaussian into four modes it needs steep, thin folds
between them (visible as streaks in its image), which NLSq's bumps make unnecessary.

    python examples/nlsq_2d_mixture.py [--steps 2000] [--seed 0] [--out FILE.png]
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.continuous import build_flow_model  # noqa: E402
from mini_flows.experiments.figures import no_plot_note, plot  # noqa: E402
from mini_flows.experiments.nlsq import (  # noqa: E402
    density_image,
    draw_2d,
    guarded_log_prob,
    mixture_log_prob,
    sample_mixture,
    train_flow,
)
from mini_flows.train import Progress  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps per flow")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=64, help="width of each MADE's hidden layer")
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    parser.add_argument("--out", default="mini-flows-results/examples/nlsq_2d_mixture.png",
                        help="PNG file for the density images")
    args = parser.parse_args(argv)
    B.set_backend(args.backend)
    rng = B.rng(args.seed)
    test = sample_mixture(20000, rng)
    entropy = -float(mixture_log_prob(sample_mixture(200000, rng)).mean())

    results, images = {}, [("true mixture", density_image(mixture_log_prob))]
    for name, transform in (("NLSq", "nlsq"), ("affine", "affine")):
        model = build_flow_model(2, 5, transform, hidden_sizes=(args.hidden,))
        print(f"training the 5-layer AF with {name} transforms")
        params = train_flow(model, model.init(B.host_rng(args.seed)), args.steps, rng, Progress(name, args.steps),
                            args.batch, args.lr)
        log_prob = lambda x: guarded_log_prob(model, params, x)  # noqa: E731
        results[name] = -float(log_prob(test).mean())
        images.append((f"5-layer AF, {name}", density_image(log_prob)))

    print()
    print(f"{'model':<28} {'test NLL (nats)':>16}")
    print(f"{'true mixture (entropy)':<28} {entropy:>16.3f}")
    for name, value in results.items():
        print(f"{'5-layer AF, ' + name:<28} {value:>16.3f}")
    gap = {name: value - entropy for name, value in results.items()}
    print(f"\nexcess over the entropy: NLSq {gap['NLSq']:.3f} nats, affine {gap['affine']:.3f} nats")
    saved = plot(Path(args.out), draw_2d(images))
    print(f"saved the three density images to {args.out}" if saved else no_plot_note(args.out))


if __name__ == "__main__":
    main()
