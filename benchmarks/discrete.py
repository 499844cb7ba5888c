"""Discrete flows at speed: the one-hot modular ops, the bipartite training step and sampling.

    python benchmarks/discrete.py [--sections ops,step,sample,torch] [--repeats 5]
                                  [--previous PATH] [--previous-max-k 256]

Sections, each a table printed as it completes:
- ops: one_hot_add, one_hot_minus and one_hot_multiply with their VJPs on 64 positions, for
  K = 2, 4, ..., 1024, and the log-log slope of time against K over K >= 64 (1 is linear).
- step: one training step (loss and gradients) of a bipartite model with 4 flows, D = 64,
  batch 64, hidden 64, MLP and Transformer networks, location-only and location-scale, at
  K = 2, 27, 51, 90, 256.
- sample: milliseconds per generated batch at T = 8, 32, 128, 288 for batch 1 and 64: the
  autoregressive LSTM baseline (2 x 256, embedding 128), the bipartite flow (8 flows, Transformers
  of width 128) and the bipartite flow's matrix-product floor (the products its sampling pass
  makes, recorded and replayed alone on arrays of the same shapes by benchmarks/matmul_floor.py,
  timed the same way); vocabulary 51 as in experiments/timing.py.
- torch: where PyTorch is installed, the bipartite MLP step written as the reference PyTorch port
  writes it (benchmarks/torch_port.py), beside mini_flows' step.

``--previous PATH`` names a checkout of an earlier mini_flows (``git worktree add PATH COMMIT``):
its ops and steps run in a worker process, interleaved with the current ones call by call (a
checkout older than ``mini_flows.process`` runs without its malloc settings), and
the tables add its time and the ratio (previous / current). Steps of the previous version above
K = ``--previous-max-k`` are skipped (the O(K^2) ops took about 30 s a step at K = 256).

One BLAS thread (set before NumPy loads), float64, NumPy backend; medians of ``--repeats`` timed
calls after one warm-up.
"""

from __future__ import annotations

import sys

if "--worker" in sys.argv:  # serving an earlier checkout: its mini_flows must be the first one imported
    sys.path.insert(0, sys.argv[sys.argv.index("--worker") + 1])
try:
    from mini_flows.process import prepare
except ImportError:  # a checkout from before mini_flows.process: the BLAS thread count comes from the parent's environment
    def prepare() -> bool:
        return False

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
import os  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
from typing import Any, Callable  # noqa: E402

OPS_KS = [2 ** i for i in range(1, 11)]
STEP_KS = [2, 27, 51, 90, 256]
SAMPLE_TS = [8, 32, 128, 288]
SAMPLE_VOCAB = 51


def case(spec: list[Any]) -> Callable[[], Any]:
    """A zero-argument callable for one measured configuration, built from the mini_flows on sys.path.
    spec: ["ops", K] or ["step", K, network, scale]."""
    from mini_flows import backend as B
    from mini_flows.discrete import build_model, units
    from mini_flows.discrete import modular as M

    rng = B.host_rng(0)
    if spec[0] == "ops":
        K = spec[1]
        eye = B.asarray([[float(i == j) for j in range(K)] for i in range(K)])
        x, mu = eye[rng.integers(0, K, 64)], eye[rng.integers(0, K, 64)]
        sigma = eye[rng.choice(units(K), 64)]
        dy = B.asarray(rng.standard_normal((64, K)))

        def ops() -> None:
            for op, vjp, b in ((M.one_hot_add, M.one_hot_add_vjp, mu), (M.one_hot_minus, M.one_hot_minus_vjp, mu),
                               (M.one_hot_multiply, M.one_hot_multiply_vjp, sigma)):
                op(x, b)
                vjp(x, b, dy)
        return ops
    _, K, network, scale = spec
    model = build_model("bipartite", K, 64, num_flows=4, scale=scale, hidden=64, network=network)
    params = model.init(B.host_rng(0))
    tokens = B.asarray(rng.integers(0, K, (64, 64)))
    return lambda: model.loss_and_grads(params, tokens)


def seconds(fn: Callable[[], Any]) -> float:
    from mini_flows import backend as B

    return B.wall_seconds(fn)


def worker(path: str) -> None:
    """Serve timings for the mini_flows at ``path`` (put first on sys.path at the top of this
    script, before anything imports mini_flows): one JSON spec a line in, seconds a line out."""
    import mini_flows

    if not os.path.abspath(mini_flows.__file__).startswith(os.path.abspath(path)):
        raise RuntimeError(f"the worker for {path} imported {mini_flows.__file__} instead")
    built: dict[str, Callable[[], Any]] = {}
    for line in sys.stdin:
        key = line.strip()
        if key not in built:
            built[key] = case(json.loads(key))
            built[key]()
        print(seconds(built[key]), flush=True)


class Previous:
    """A worker process running an earlier checkout of mini_flows."""

    def __init__(self, path: str):
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def time(self, spec: list[Any]) -> float:
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())


def side_by_side(spec: list[Any], repeats: int, previous: Previous | None) -> tuple[float, float | None]:
    """Median seconds of the current and (where given) the previous implementation, interleaved."""
    fn = case(spec)
    fn()
    if previous is not None:
        previous.time(spec)
    now, before = [], []
    for _ in range(repeats):
        now.append(seconds(fn))
        if previous is not None:
            before.append(previous.time(spec))
    return statistics.median(now), statistics.median(before) if before else None


def slope(ks: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) against log(K)."""
    lx, ly = [math.log(k) for k in ks], [math.log(t) for t in times]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def ratio_cells(now: float, before: float | None) -> str:
    return f"{1e3 * before:>14.2f}{before / now:>9.1f}x" if before is not None else f"{'-':>14}{'-':>10}"


def ops_section(repeats: int, previous: Previous | None) -> None:
    print("\nOne-hot ops + VJPs (add, minus, multiply), 64 positions, ms per round")
    print(f"{'K':>6}{'current':>12}{'previous':>14}{'ratio':>10}")
    ks, now_times, before_times = [], [], []
    for K in OPS_KS:
        now, before = side_by_side(["ops", K], repeats, previous)
        print(f"{K:>6}{1e3 * now:>12.3f}{ratio_cells(now, before)}", flush=True)
        ks.append(K)
        now_times.append(now)
        before_times.append(before)
    big = [i for i, k in enumerate(ks) if k >= 64]
    line = f"log-log slope over K >= 64: current {slope([ks[i] for i in big], [now_times[i] for i in big]):.2f}"
    if previous is not None:
        line += f", previous {slope([ks[i] for i in big], [before_times[i] for i in big]):.2f}"
    print(line)


def step_section(repeats: int, previous: Previous | None, previous_max_k: int) -> None:
    print("\nBipartite training step: 4 flows, D = 64, batch 64, hidden 64, ms per step")
    print(f"{'K':>5}  {'network':<12}{'scale':<7}{'current':>10}{'previous':>14}{'ratio':>10}")
    for K in STEP_KS:
        for network in ("mlp", "transformer"):
            for scale in (False, True):
                use = previous if K <= previous_max_k else None
                now, before = side_by_side(["step", K, network, scale], repeats, use)
                print(f"{K:>5}  {network:<12}{str(scale):<7}{1e3 * now:>10.1f}{ratio_cells(now, before)}", flush=True)


def sample_section(repeats: int) -> None:
    from interleaved import interleaved_medians
    from matmul_floor import matmul_floor, recorded_matmuls
    from mini_flows import backend as B
    from mini_flows.discrete import build_model
    from mini_flows.latent.baseline import LSTMBaseline
    from mini_flows.latent.config import BaselineConfig

    print(f"\nSampling, ms per batch (vocabulary {SAMPLE_VOCAB}; LSTM 2 x 256; 8 bipartite flows of width 128)")
    print(f"{'T':>5}{'batch':>7}{'AR LSTM':>11}{'bipartite':>11}{'floor':>9}{'LSTM/bip':>10}{'bip/floor':>11}")
    lstm = LSTMBaseline(BaselineConfig(SAMPLE_VOCAB, max(SAMPLE_TS), embed_size=128, hidden_size=256, num_layers=2))
    lstm_params = lstm.init(B.host_rng(0))
    for T in SAMPLE_TS:
        model = build_model("bipartite", SAMPLE_VOCAB, T, num_flows=8, hidden=128, network="transformer")
        params = model.init(B.host_rng(0))
        for batch in (1, 64):
            runs = {
                "lstm": lambda: lstm.sample(lstm_params, batch, 1, B.asarray([T] * batch)),
                "bip": lambda: model.sample(params, batch, 1),
                "floor": matmul_floor(recorded_matmuls(lambda p: model.sample(p, batch, 1), params)),
            }
            m = interleaved_medians(runs, repeats)
            print(f"{T:>5}{batch:>7}{1e3 * m['lstm']:>11.1f}{1e3 * m['bip']:>11.1f}{1e3 * m['floor']:>9.1f}"
                  f"{m['lstm'] / m['bip']:>9.2f}x{m['bip'] / m['floor']:>10.2f}x", flush=True)


def torch_section(repeats: int) -> None:
    try:
        import torch
    except ImportError:
        print("\ntorch: PyTorch is not installed; section skipped")
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_port import torch_step

    torch.set_num_threads(1)
    print(f"\nBipartite MLP step against PyTorch {torch.__version__} written as the reference port writes it "
          "(stacked rolls + einsum), ms per step")
    print(f"{'K':>5}  {'scale':<7}{'mini_flows':>12}{'torch port':>12}{'torch / mini_flows':>20}")
    for K in STEP_KS:
        for scale in (False, True):
            ours, theirs = case(["step", K, "mlp", scale]), torch_step(K, scale)
            ours()
            theirs()
            a, b = [], []
            for _ in range(repeats):
                a.append(seconds(ours))
                b.append(seconds(theirs))
            now, port = statistics.median(a), statistics.median(b)
            print(f"{K:>5}  {str(scale):<7}{1e3 * now:>12.1f}{1e3 * port:>12.1f}{port / now:>19.1f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="ops,step,sample,torch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--previous", help="path of a checkout of an earlier mini_flows to compare with")
    parser.add_argument("--previous-max-k", type=int, default=256)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    sections = args.sections.split(",")
    unknown = set(sections) - {"ops", "step", "sample", "torch"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from ops, step, sample, torch")
    previous = Previous(args.previous) if args.previous else None
    from interleaved import machine_header

    print(f"{machine_header()}; float64, median of {args.repeats}" + (f"; previous = {args.previous}" if previous else ""))
    if "ops" in sections:
        ops_section(args.repeats, previous)
    if "step" in sections:
        step_section(args.repeats, previous, args.previous_max_k)
    if "sample" in sections:
        sample_section(args.repeats)
    if "torch" in sections:
        torch_section(args.repeats)


if __name__ == "__main__":
    main()
