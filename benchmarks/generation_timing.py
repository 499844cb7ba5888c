"""Seconds per generated sequence against its length T at the papers' sizes: AR LSTM baseline,
IAF / SCF and the discrete bipartite flow (Ziegler and Rush 2019, Figure 7; Tran et al. 2019,
Table 3's generation column).

    python benchmarks/generation_timing.py [--lengths 8 16 32 64 128 288] [--repeats 20]
                                           [--hidden 500] [--embed 500] [--latent 50] [--layers 2]
                                           [--bipartite 128] [--backend numpy|cupy]

The measurement is ``mini_flows.experiments.timing.measure`` (batch 1, untrained models, the
generators interleaved, one warm-up each); ``mini-flows run timing`` runs the same at smaller
sizes. This script defaults to supplement D's sizes: two-layer LSTMs of 500 units, 500-unit
embeddings, latent size 50, a 51-character vocabulary, T up to 288.

What to expect. The paper's speed-up for IAF / SCF (on a V100 with cuDNN) comes from running the
flow's LSTMs over inputs that are all known in advance. On a CPU with NumPy every recurrent matmul
is still one Python-level step: IAF / SCF does about six H x 4H recurrent matmuls per time step
(the prior's two-layer LSTM and the emission's two-layer BiLSTM) against the baseline's three, so
the baseline stays ahead; the bipartite flow, with no recurrence, does not. Run with
--backend cupy on a GPU for the papers' setting. On a shared or small CPU set
OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402

from interleaved import machine_header  # noqa: E402
from mini_flows import backend as B  # noqa: E402
from mini_flows.experiments.tables import Table  # noqa: E402
from mini_flows.experiments.timing import GENERATORS, measure, table_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32, 64, 128, 288])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--embed", type=int, default=500)
    parser.add_argument("--latent", type=int, default=50)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--bipartite", type=int, default=128, help="width of the 8 bipartite flows' Transformers")
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    args = parser.parse_args()
    if min(args.lengths) < 1 or args.repeats < 2:
        parser.error("lengths must be >= 1 and --repeats >= 2")
    B.set_backend(args.backend)
    sizes = dict(embed=args.embed, hidden=args.hidden, layers=args.layers, latent=args.latent,
                 bipartite=args.bipartite)
    print(f"{machine_header()}; backend {args.backend}, batch 1, sizes {sizes}, {args.repeats} generations per length")
    rows = table_rows(measure(args.lengths, sizes, args.repeats, seed=0))
    print(Table(f"milliseconds per generated sequence ({args.backend})",
                [*GENERATORS, "LSTM / IAF", "LSTM / bipartite"], rows,
                note="Tran et al.'s Table 3 at T = 288 on a P100 GPU in parentheses").render())


if __name__ == "__main__":
    main()
