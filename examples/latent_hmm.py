"""Latent flow models and the LSTM baseline on a synthetic hidden-Markov character source, against
the source's exact likelihood: a toy-scale Tables 1 and 2 of Ziegler and Rush (2019).

    python examples/latent_hmm.py [--steps 300] [--seed 0] [--quick] [--backend numpy|cupy]

The same as ``mini-flows run charlm`` (300 steps per model by default, about two minutes on two
cores; ``--steps 1000`` trains longer): the experiment lives in
``mini_flows/experiments/charlm.py``, which is the code to read. Every model sees the same batches
for the same Adam steps; the latent models train on the annealed ELBO and are scored by importance
sampling; the table gives test bits per character beside the paper's Penn Treebank numbers, with
the source's exact NLL as the floor.

The script asks OpenBLAS for one thread unless OPENBLAS_NUM_THREADS is set: on a small CPU its
threads make these small matmuls several times slower.
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import sys  # noqa: E402

from mini_flows.cli import main  # which asks for one BLAS thread before NumPy loads  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", "charlm", *sys.argv[1:]]))
