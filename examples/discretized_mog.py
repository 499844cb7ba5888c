"""Figure 2 of Tran et al. (2019) at toy scale: a discretized mixture of Gaussians, learnt by a
factorized base alone and by one discrete flow on the same base.

The data: 8 Gaussians with means evenly spaced on a circle of radius 2, variance 0.01, samples
truncated to [-2.25, 2.25] and discretized at the 0.05 level, giving D = 2 categorical variables
(one per coordinate) with K = 90 states each. A factorized base p(x1) p(x2) cannot put its mass on
the 8 modes only; one bipartite flow (keep x1, shift x2 by mu(x1) mod 90, an MLP on one_hot(x1))
relabels x2 column by column so that a factorized base fits much better. (With D = 2 the
autoregressive and bipartite flows coincide.)

Both models train with Adam on the same data (``mini_flows.experiments.mog2d``, which
``mini-flows run mog2d`` also runs); the script prints their negative log-likelihoods on that
data beside its empirical entropy (the lowest NLL any model can reach on it), and saves the three
90 x 90 probability images (data, base alone, flow) as a PNG where matplotlib is installed.

    python examples/discretized_mog.py [--steps 1500] [--seed 0] [--backend numpy|cupy] [--out FILE.png]
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.data import mog_samples  # noqa: E402
from mini_flows.experiments.evaluation import mean_nll  # noqa: E402
from mini_flows.experiments.figures import no_plot_note, plot  # noqa: E402
from mini_flows.experiments.mog2d import K, draw_images, entropy, histogram, probability_image, train_models  # noqa: E402
from mini_flows.experiments.mog2d import LOW, WIDTH  # noqa: F401, E402  (the grid: cell i starts at LOW + i WIDTH)


def sample_mog(n: int, rng: np.random.Generator) -> np.ndarray:
    """n points from the truncated mixture, discretized: integer tokens (n, 2) in [0, 90)."""
    return mog_samples(n, int(rng.integers(2**32)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--hidden", type=int, default=64, help="width of the flow's MLP")
    parser.add_argument("--num-data", type=int, default=20000, help="training points")
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    parser.add_argument("--out", default="mini-flows-results/examples/discretized_mog.png",
                        help="PNG file for the three images")
    args = parser.parse_args(argv)
    B.set_backend(args.backend)
    data = B.asarray(sample_mog(args.num_data, np.random.default_rng(args.seed)))
    empirical = histogram(data)
    print(f"{args.num_data} points, {int((empirical > 0).sum())} of {K * K} cells occupied")

    models, _ = train_models(data, args.steps, args.batch, args.lr, args.hidden, args.seed)
    base_only, flow = models.values()
    print(f"\nnegative log-likelihood on the training data (nats, lower is better; {args.steps} steps):")
    print(f"  empirical entropy of the data   {entropy(empirical):6.3f}")
    print(f"  factorized base alone           {mean_nll(partial(base_only[0].log_prob, base_only[1]), data):6.3f}")
    print(f"  one bipartite flow + base       {mean_nll(partial(flow[0].log_prob, flow[1]), data):6.3f}")
    saved = plot(Path(args.out), draw_images([("data", empirical), ("factorized base", probability_image(*base_only)),
                                              ("1 flow + factorized base", probability_image(*flow))]))
    print(f"saved the three probability images to {args.out}" if saved else no_plot_note(args.out))


if __name__ == "__main__":
    main()
