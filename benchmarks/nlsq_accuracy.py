"""NLSq's analytic inverse against a high-precision oracle, over the range where it claims accuracy.

    python benchmarks/nlsq_accuracy.py [--points 2000] [--seed 0] [--backend numpy|cupy]

For float64 and float32 and a ladder of alpha (the least slope is b (1 - alpha)), draws NLSq
parameters and points over the documented range (tests/continuous/oracle.py's ``draw_in_range``:
log_b, log_d in [-40, 40], c_raw in [-20, 20], |a|, |g| up to 1e15, eps random up to 1e20, near
the flat point, near the closed form's branch switch |r| = 1e4, and d eps cancelling a large g),
rounds z = f(eps) to the dtype, inverts it with ``NLSq.inverse`` and compares with mpmath's root
of the rounded problem. Reported per row: the median, 99th percentile and maximum error in ulps of
the problem's conditioning (|eps_hat - eps*| / (u cond), cubic.py's module docstring; the claim is
a few), and the median relative error |eps_hat - eps*| / |eps*| (its maximum says little: a root
near 0 has a large relative error wherever cond allows it). A last table splits all points by region.

mpmath does the oracle at 80 digits, about 1 ms a point: the default takes a minute or two.
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for tests.continuous

from mini_flows import backend as B  # noqa: E402
from tests.continuous.oracle import REGIONS, draw_in_range, oracle_errors  # noqa: E402

ALPHAS = (0.5, 0.95, 1 - 1e-3, 1 - 1e-6, 1 - 1e-9, 1 - 1e-12, 1 - 1e-15)


def _row(label: str, ulps: np.ndarray, rel: np.ndarray) -> str:
    q = np.percentile(ulps, [50, 99])
    return f"{label:<24}{ulps.size:>7}{q[0]:>10.3f}{q[1]:>10.3f}{ulps.max():>10.3f}{np.median(rel):>16.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=2000, help="points per (dtype, alpha) row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=B.BACKENDS, default="numpy")
    args = parser.parse_args()
    B.set_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    header = f"{'':<24}{'points':>7}{'median':>10}{'p99':>10}{'max':>10}{'median rel err':>16}"
    by_region: dict[tuple[str, int], list[np.ndarray]] = {}
    for dtype in ("float64", "float32"):
        print(f"\nNLSq.inverse, {dtype}: error in ulps of cond (u = 2^{int(np.log2(np.finfo(dtype).eps)) - 1})")
        print(header)
        everything = []
        for alpha in ALPHAS:
            f, eps, region = draw_in_range(rng, args.points, dtype, alpha)
            z, _ = f.forward(B.asarray(eps))
            ulps, rel = oracle_errors(f, B.to_numpy(f.inverse(z)[0]), z)
            print(_row(f"alpha = 1 - {1 - alpha:.0e}", ulps, rel))
            everything.append((ulps, rel))
            for r in range(len(REGIONS)):
                by_region.setdefault((dtype, r), []).append(ulps[region == r])
        print(_row("all", *(np.concatenate(v) for v in zip(*everything))))
    print("\nBy region, all alphas: error in ulps of cond")
    print(f"{'':<34}{'points':>7}{'median':>10}{'p99':>10}{'max':>10}")
    for (dtype, r), parts in by_region.items():
        ulps = np.concatenate(parts)
        q = np.percentile(ulps, [50, 99])
        print(f"{dtype + ', ' + REGIONS[r]:<34}{ulps.size:>7}{q[0]:>10.3f}{q[1]:>10.3f}{ulps.max():>10.3f}")


if __name__ == "__main__":
    main()
