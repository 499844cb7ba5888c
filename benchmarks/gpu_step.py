"""One training step at batch 4096 on CuPy against NumPy, for a discrete and a latent flow model.

    python benchmarks/gpu_step.py [--batch 4096] [--repeats 5] [--numpy-repeats 1]

Rows:
- bipartite: ``build_model("bipartite", 51, 64, num_flows=4, hidden=64, network="mlp")``, tokens
  (batch, 64): loss and gradients by the hand-written backward passes, then an Adam step.
- latent af/scf: ``LatentFlowModel`` with the AF / SCF prior at small sizes (vocabulary 51,
  length 12, latent 8, embedding and LSTMs 32, one layer, flow MLPs of 32), one noise sample per
  sequence: the ELBO's gradients, then an Adam step.

Columns: milliseconds per step on NumPy and on CuPy, and the speed-up (NumPy / CuPy). Where CuPy
or a GPU is missing, the CuPy column says so and only NumPy is timed, so the script runs anywhere.
float64 (the library's default). CuPy: the median of ``--repeats`` steps after one warm-up step
(which compiles the kernels), each timed by ``B.wall_seconds``, which waits for the GPU before and
after. NumPy: the median of ``--numpy-repeats`` steps, no warm-up (nothing to compile; a step takes
seconds at batch 4096 and varies little). Both backends start from the same parameters and data
(drawn on the host, moved with ``B.asarray``).
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
import statistics  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.discrete import build_model  # noqa: E402
from mini_flows.latent import LatentConfig, LatentFlowModel  # noqa: E402
from mini_flows.optim import Adam  # noqa: E402

LATENT = dict(vocab_size=51, max_length=12, prior="af/scf", latent_dim=8, embed_size=32, hidden_size=32, num_layers=1,
              flow_hidden_sizes=(32,))


def bipartite_step(batch: int) -> Callable[[], Any]:
    """One training step of the bipartite model on the current backend, as a zero-argument callable."""
    model = build_model("bipartite", 51, 64, num_flows=4, hidden=64, network="mlp")
    params = model.init(B.host_rng(0))
    tokens = B.asarray(np.random.default_rng(1).integers(0, 51, size=(batch, 64)))
    optimizer = Adam(lr=1e-3)

    def step() -> None:
        _, grads, _ = model.loss_and_grads(params, tokens)
        optimizer.step(params, grads)

    return step


def latent_step(batch: int) -> Callable[[], Any]:
    """One training step of the latent AF / SCF model on the current backend."""
    model = LatentFlowModel(LatentConfig(**LATENT))
    params = model.init(B.host_rng(0))
    rng = np.random.default_rng(1)
    T = LATENT["max_length"]
    x = B.asarray(rng.integers(0, LATENT["vocab_size"], size=(batch, T)))
    lengths = B.asarray(rng.integers(T // 2, T + 1, size=batch))
    noise = B.asarray(rng.standard_normal((1, batch, T, LATENT["latent_dim"])))
    optimizer = Adam(lr=1e-3)

    def step() -> None:
        _, _, grads = model.elbo_and_grads(params, x, lengths, noise)
        optimizer.step(params, grads)

    return step


CASES = {"bipartite": bipartite_step, "latent af/scf": latent_step}


def milliseconds(backend: str, make_step: Callable[[int], Callable[[], Any]], batch: int, repeats: int,
                 warm_up: bool) -> float:
    """Median milliseconds of one step on ``backend`` over ``repeats`` steps (after one untimed step
    where ``warm_up``)."""
    with B.use_backend(backend):
        step = make_step(batch)
        if warm_up:
            step()
        return 1000 * statistics.median(B.wall_seconds(step) for _ in range(repeats))


def main(argv: list[str] | None = None) -> None:
    """Print the table (and, where CuPy is missing, why its column is empty)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5, help="timed CuPy steps, after a warm-up step")
    parser.add_argument("--numpy-repeats", type=int, default=1, help="timed NumPy steps")
    args = parser.parse_args(argv)
    missing = B.unavailable("cupy")
    print(f"One training step, batch {args.batch}, float64, ms: NumPy median of {args.numpy_repeats}, "
          f"CuPy median of {args.repeats} after a warm-up")
    print(f"{'model':<16}{'NumPy':>12}{'CuPy':>12}{'speed-up':>10}")
    for name, make_step in CASES.items():
        numpy_ms = milliseconds("numpy", make_step, args.batch, args.numpy_repeats, warm_up=False)
        if missing:
            print(f"{name:<16}{numpy_ms:>12.1f}{'-':>12}{'-':>10}", flush=True)
            continue
        cupy_ms = milliseconds("cupy", make_step, args.batch, args.repeats, warm_up=True)
        print(f"{name:<16}{numpy_ms:>12.1f}{cupy_ms:>12.1f}{numpy_ms / cupy_ms:>9.1f}x", flush=True)
    if missing:
        print(f"- CuPy column empty: CuPy is unavailable here ({missing})")


if __name__ == "__main__":
    main()
