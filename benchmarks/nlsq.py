"""NLSq's analytic inverse (the cubic) against its closed-form formula, and the three sequence
priors' sampling against their density evaluation.

    python benchmarks/nlsq.py [--elements 1000000] [--batch 16] [--length 20] [--hidden 8]
                              [--repeats 5] [--backend numpy|cupy]

Table 1: ``NLSqTransform.formula`` (data -> base, what training runs) and ``solve`` (base -> data,
what sampling runs) on the same 10^6 elements, with their backward passes; the goal is a solve
within 3x of the formula. Table 2: ``sample`` and ``log_prob`` (and log_prob with its backward)
of AF / AF, AF / SCF and IAF / SCF at a toy size. AF in time samples one step (and AF in hidden
one dimension) after another; IAF in time evaluates densities one step after another. Every
pair is timed in the same run, interleaved, and the tables report medians and ratios.

On a shared or small CPU run it with OPENBLAS_NUM_THREADS=1: OpenBLAS's threads can otherwise
turn a small matmul such as (320, 40) @ (40, 72) from 0.03 ms into 15 ms, which swamps Table 2.
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from interleaved import interleaved_medians  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.continuous import NLSqTransform, build_prior  # noqa: E402



def _medians(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Median wall time in ms of each function, run interleaved after one warm-up call each."""
    return [1e3 * t for t in interleaved_medians(dict(enumerate(fns)), repeats).values()]


def nlsq_table(n: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    t = NLSqTransform()
    print(f"Table 1: NLSq on {n:,} elements, median of {repeats} (ms)")
    print(f"{'dtype':<9}{'pass':<10}{'formula':>10}{'solve':>10}{'solve / formula':>17}")
    for dtype in ("float64", "float32"):
        raw = B.asarray(rng.uniform(-2, 2, size=(n, 5)), dtype)
        x = B.asarray(3 * rng.standard_normal(n), dtype)
        (y, _), _ = t.formula(raw, x)
        dy, dlogdet = B.asarray(rng.standard_normal(n), dtype), B.asarray(rng.standard_normal(n), dtype)
        formula_cache, solve_cache = t.formula(raw, x)[1], t.solve(raw, y)[1]
        forward = _medians([lambda: t.formula(raw, x), lambda: t.solve(raw, y)], repeats)
        backward = _medians([lambda: t.formula_backward(formula_cache, dy, dlogdet),
                             lambda: t.solve_backward(solve_cache, dy, dlogdet)], repeats)
        for name, (f, s) in (("forward", forward), ("backward", backward)):
            print(f"{dtype:<9}{name:<10}{f:>10.1f}{s:>10.1f}{s / f:>16.2f}x")


def prior_table(batch: int, length: int, hidden: int, repeats: int) -> None:
    print(f"\nTable 2: priors, batch {batch}, length {length}, H {hidden}, LSTM 32, MADE/MLP hidden 32,"
          f" float64, median of {repeats} (ms)")
    print(f"{'prior':<10}{'layers':>7}{'sample':>10}{'log_prob':>10}{'+backward':>11}{'sample / log_prob':>19}")
    rng = np.random.default_rng(0)
    host = rng.integers(length // 2, length + 1, size=batch)
    host[0] = length  # the longest sequence fills the length axis
    lengths = B.asarray(host)
    for kind in ("af/af", "af/scf", "iaf/scf"):
        prior = build_prior(kind, hidden, max_length=length, lstm_size=32, hidden_sizes=(32,))
        params = prior.init(B.host_rng(0))
        z = prior.sample(params, batch, lengths, seed=1)
        dlogp = B.xp().ones(batch)

        def train_step():
            _, cache = prior.log_prob_and_cache(params, z, lengths)
            return prior.log_prob_vjp(params, cache, dlogp)

        sample, log_prob, step = _medians([lambda: prior.sample(params, batch, lengths, seed=2),
                                           lambda: prior.log_prob(params, z, lengths), train_step], repeats)
        print(f"{kind:<10}{len(prior.flow.layers):>7}{sample:>10.1f}{log_prob:>10.1f}{step:>11.1f}{sample / log_prob:>18.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=10**6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", choices=B.BACKENDS, default=B.get_backend())
    args = parser.parse_args()
    B.set_backend(args.backend)
    print(f"backend {args.backend}\n")
    nlsq_table(args.elements, args.repeats)
    prior_table(args.batch, args.length, args.hidden, args.repeats)


if __name__ == "__main__":
    main()
