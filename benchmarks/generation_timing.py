"""Seconds per generated sequence against its length T, LSTM baseline vs IAF / SCF (the paper's Figure 7).

    python benchmarks/generation_timing.py [--lengths 8 16 32 64 128 288] [--repeats 20]
                                           [--hidden 500] [--embed 500] [--latent 50] [--layers 2]
                                           [--vocab 51] [--flow-hidden 500] [--out DIR]
                                           [--backend numpy|cupy]

Ziegler and Rush (2019), section 6.3: batch size 1, both models untrained (speed does not depend
on the weights) and of supplement D's size by default: two-layer LSTMs with 500 units, 500-unit
embeddings, latent size 50, three IAF / SCF layers, a 51-character vocabulary, T up to 288.
The baseline draws x_t from p(x_t | x_<t, T) one step after another: every step waits for the
token before it. IAF / SCF draws all of eps at once, runs the prior's time LSTM over eps (its
inputs are known in advance, so their projections are one matmul), the SCF layers in parallel
over time, and the emission BiLSTM and softmax over all steps together.

What to expect. The paper's speed-up (on a V100 with cuDNN) comes from running the flow's LSTMs
over inputs that are all known in advance. On a CPU with NumPy every recurrent matmul is still
one Python-level step: IAF / SCF then does about six H x 4H recurrent matmuls per time step (the
prior's two-layer LSTM and the emission's two-layer BiLSTM) against the baseline's three (its
second layer's input projection included), so the baseline stays ahead, by a ratio that
approaches about 2 as T grows and the flow's fixed costs are amortised. Run with --backend cupy
on a GPU for the paper's setting.

Each length gets ``repeats`` timed generations after one warm-up; the table reports the mean
and a 95% confidence interval (mean +- 1.96 standard errors, as the paper's error bars). A plot
``generation_timing.png`` is written to --out where matplotlib is installed.

On a shared or small CPU run it with OPENBLAS_NUM_THREADS=1 (see benchmarks/nlsq.py).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

from mini_flows import backend as B
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.model import LatentFlowModel



def _mean_ci(times: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% confidence interval), in seconds."""
    mean = statistics.fmean(times)
    spread = statistics.stdev(times) if len(times) > 1 else 0.0
    return mean, 1.96 * spread / math.sqrt(len(times))


def time_generation(args: argparse.Namespace) -> list[dict[str, float]]:
    """Mean and 95% interval of the seconds per sequence for each length, both models interleaved."""
    max_length = max(args.lengths)
    baseline = LSTMBaseline(args.vocab, max_length, embed_size=args.embed, hidden_size=args.hidden,
                            num_layers=args.layers)
    flow = LatentFlowModel(args.vocab, max_length, prior="iaf/scf", latent_dim=args.latent, embed_size=args.embed,
                           hidden_size=args.hidden, num_layers=args.layers, flow_hidden_sizes=(args.flow_hidden,))
    baseline_params, flow_params = baseline.init(B.host_rng(0)), flow.init(B.host_rng(1))
    rows = []
    for T in args.lengths:
        lengths = B.asarray([T])
        runs = {"lstm": lambda seed: baseline.sample(baseline_params, 1, seed, lengths),
                "iaf/scf": lambda seed: flow.sample(flow_params, 1, seed, lengths)}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name, run in runs.items():
            run(0)
        for seed in range(1, args.repeats + 1):
            for name, run in runs.items():
                times[name].append(B.wall_seconds(lambda: run(seed)))
        row: dict[str, float] = {"T": T}
        for name, t in times.items():
            row[name], row[f"{name} ci"] = _mean_ci(t)
        rows.append(row)
        print(f"{T:>5}{1e3 * row['lstm']:>11.1f} +-{1e3 * row['lstm ci']:>5.1f}"
              f"{1e3 * row['iaf/scf']:>11.1f} +-{1e3 * row['iaf/scf ci']:>5.1f}"
              f"{row['lstm'] / row['iaf/scf']:>11.2f}x", flush=True)
    return rows


def plot(rows: list[dict[str, float]], path: str) -> str:
    """Write Figure 7's plot (seconds against T with 95% error bars); say where, or why it skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(5, 3.5))
    lengths = [row["T"] for row in rows]
    for name, label in (("lstm", "LSTM baseline"), ("iaf/scf", "IAF / SCF")):
        ax.errorbar(lengths, [row[name] for row in rows], yerr=[row[f"{name} ci"] for row in rows],
                    marker="o", capsize=3, label=label)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("seconds per sequence (batch 1)")
    ax.set_title(f"Generation time ({B.get_backend()})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32, 64, 128, 288])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--embed", type=int, default=500)
    parser.add_argument("--latent", type=int, default=50)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=51)
    parser.add_argument("--flow-hidden", type=int, default=500)
    parser.add_argument("--out", default=".")
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    args = parser.parse_args()
    if min(args.lengths) < 1 or args.repeats < 2:
        parser.error("lengths must be >= 1 and --repeats >= 2")
    B.set_backend(args.backend)
    print(f"backend {args.backend}, batch 1, LSTMs {args.layers} x {args.hidden}, embedding {args.embed}, "
          f"latent {args.latent}, vocabulary {args.vocab}, {args.repeats} generations per length\n")
    print(f"{'T':>5}{'LSTM ms':>11}{'+-95%':>8}{'IAF/SCF ms':>11}{'+-95%':>8}{'LSTM/IAF':>11}")
    rows = time_generation(args)
    os.makedirs(args.out, exist_ok=True)
    print("\n" + plot(rows, os.path.join(args.out, "generation_timing.png")))


if __name__ == "__main__":
    main()
