"""The sequence models' training steps: the blocks beside PyTorch, the latent model beside its baseline.

    python benchmarks/sequence_models.py [--sections blocks,latent] [--repeats 9]
                                         [--batch 32] [--length 64] [--width 64]

Sections, each a table printed as it completes:
- blocks: one training step (forward and backward, gradients to the parameters and the input)
  of the LSTM, the BiLSTM and the causal pre-layer-norm Transformer block (4 heads, d_ff = 4
  width), in float32 and float64; where PyTorch is installed, its step for the same block
  (benchmarks/torch_sequence.py) beside it and the ratio mini_flows / torch (below 1: faster).
  The Transformer block is also compared with torch's attention written out as softmax(Q K^T) V.
  Beside each block, its floor: the same step's matrix products alone, the same count and shapes,
  replayed on preallocated random arrays (benchmarks/matmul_floor.py), and block / floor.
- latent: one ELBO step (loss and gradients) of the latent flow model for each prior at the
  ``music`` experiment's sizes (88 keys, embedding 16, LSTM 32, latent 4, batch 32, 54 steps),
  with S = 1 and S = 2 samples (``music`` trains with 2, in float32), and the ratio to the LSTM
  baseline's step on the same batch in the same dtype, float32 and float64.

One BLAS thread (set before NumPy loads) and one PyTorch thread; the compared calls are
interleaved (each repeat runs every row once) and the table shows medians after one warm-up.
The header names the CPU, NumPy, and the BLAS with the kernel it runs (which OPENBLAS_CORETYPE
may force: the timings belong to that kernel) and its thread count.
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
from typing import Any, Callable  # noqa: E402

from interleaved import interleaved_medians, machine_header  # noqa: E402
from matmul_floor import matmul_floor, recorded_matmuls  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.experiments.sequences import LATENT, SIZES  # noqa: E402
from mini_flows.latent.baseline import LSTMBaseline  # noqa: E402
from mini_flows.latent.config import BaselineConfig, LatentConfig  # noqa: E402
from mini_flows.latent.model import LatentFlowModel  # noqa: E402
from mini_flows.nn.lstm import LSTM, BiLSTM  # noqa: E402
from mini_flows.nn.transformer import TransformerBlock  # noqa: E402

try:
    import torch_sequence
except ImportError:  # PyTorch is not installed: the tables leave its columns out
    torch_sequence = None

PRIORS = ("af/af", "af/scf", "iaf/scf")
KEYS, MUSIC_LENGTH = 88, 54


def header() -> str:
    """The machine (``interleaved.machine_header``) and PyTorch: what a timing belongs to."""
    torch_note = (f"PyTorch {torch_sequence.torch.__version__}, {torch_sequence.torch.get_num_threads()} thread"
                  if torch_sequence else "PyTorch not installed")
    return f"{machine_header()}; {torch_note}"


def block_step(name: str, batch: int, length: int, width: int, dtype: str) -> tuple[Callable[..., Any], tuple]:
    """One forward and backward pass of a mini_flows block, as ``step(params, x, dy)``, and its
    arguments: the block's parameters and fixed random inputs."""
    rng = B.host_rng(0)
    block: Any = {"LSTM": LSTM(width, width), "BiLSTM": BiLSTM(width, width),
                  "Transformer block": TransformerBlock(width, 4, 4 * width)}[name]
    params = block.init(rng, dtype)
    out_width = 2 * width if name == "BiLSTM" else width
    x = B.asarray(rng.standard_normal((batch, length, width)), dtype)
    dy = B.asarray(rng.standard_normal((batch, length, out_width)), dtype)

    def step(params: Any, x: Any, dy: Any) -> Any:
        if name == "Transformer block":
            y, cache = block.forward(params, x, causal=True)
        elif name == "LSTM":
            (y, _), cache = block.forward(params, x)
        else:
            y, cache = block.forward(params, x)
        return block.backward(params, cache, dy)

    return step, (params, x, dy)


def torch_block_step(name: str, batch: int, length: int, width: int, dtype: str, plain: bool) -> Callable[[], Any]:
    if name == "Transformer block":
        return torch_sequence.transformer_step(batch, length, width, dtype, plain)
    return torch_sequence.lstm_step(batch, length, width, dtype, bidirectional=name == "BiLSTM")


def blocks_section(args: argparse.Namespace) -> None:
    print(f"\nOne training step, batch {args.batch}, length {args.length}, width {args.width}; median ms of "
          f"{args.repeats}, interleaved; floor: the step's matrix products alone\n{header()}")
    columns = [("floor", 9), ("torch", 9), ("torch plain", 13)]
    print(f"{'block':<20}{'dtype':<9}{'mini_flows':>11}" + "".join(f"{c:>{w}}{'ratio':>7}" for c, w in columns))
    for name in ("LSTM", "BiLSTM", "Transformer block"):
        for dtype in ("float32", "float64"):
            sizes = (args.batch, args.length, args.width, dtype)
            step, arrays = block_step(name, *sizes)
            calls = {"mini_flows": lambda step=step, arrays=arrays: step(*arrays),
                     "floor": matmul_floor(recorded_matmuls(step, *arrays))}
            if torch_sequence:
                calls["torch"] = torch_block_step(name, *sizes, plain=False)
                if name == "Transformer block":
                    calls["torch plain"] = torch_block_step(name, *sizes, plain=True)
            t = interleaved_medians(calls, args.repeats)
            row = f"{name:<20}{dtype:<9}{1e3 * t['mini_flows']:>11.2f}"
            for column, width in columns:
                if column in t:
                    row += f"{1e3 * t[column]:>{width}.2f}{t['mini_flows'] / t[column]:>7.2f}"
            print(row, flush=True)


def latent_section(args: argparse.Namespace) -> None:
    rng = B.host_rng(0)
    batch, T = args.batch, MUSIC_LENGTH
    rolls = rng.random((batch, T, KEYS)) < 0.05
    lengths = B.asarray(rng.integers(T // 2, T + 1, batch))
    lengths[0] = T
    calls: dict[tuple[str, str, str], Callable[[], Any]] = {}
    for dtype in ("float32", "float64"):
        x = B.asarray(rolls, dtype)
        baseline = LSTMBaseline(BaselineConfig(KEYS, T, output="bernoulli", **SIZES))
        baseline_params = baseline.init(B.host_rng(0), dtype)
        calls[("LSTM baseline", "-", dtype)] = (
            lambda baseline=baseline, p=baseline_params, x=x: baseline.loss_and_grads(p, x, lengths))
        for prior in PRIORS:
            model = LatentFlowModel(LatentConfig(KEYS, T, prior=prior, output="bernoulli", **SIZES, **LATENT))
            params = model.init(B.host_rng(0), dtype)
            for samples in (1, 2):
                noise = B.asarray(rng.standard_normal((samples, batch, T, model.H)), dtype)
                calls[(prior.upper().replace("/", " / "), str(samples), dtype)] = (
                    lambda model=model, p=params, x=x, noise=noise: model.elbo_and_grads(p, x, lengths, noise, 0.5))
    print(f"\nThe music experiment's training step: batch {batch}, {T} steps, 88 keys, embedding 16, LSTM 32, "
          f"latent 4, S samples of the ELBO (music trains with 2, in float32); median ms of {args.repeats}, "
          "interleaved")
    print(f"{'model':<16}{'S':>3}{'float32 ms':>12}{'vs baseline':>13}{'float64 ms':>12}{'vs baseline':>13}")
    t = interleaved_medians(calls, args.repeats)
    for label, samples, dtype in calls:
        if dtype == "float32":
            row = f"{label:<16}{samples:>3}"
            for d in ("float32", "float64"):
                seconds, base = t[(label, samples, d)], t[("LSTM baseline", "-", d)]
                row += f"{1e3 * seconds:>12.1f}{seconds / base:>12.2f}x"
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="blocks,latent")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    B.set_backend("numpy")
    sections = {"blocks": blocks_section, "latent": latent_section}
    for name in args.sections.split(","):
        if name not in sections:
            parser.error(f"unknown section {name!r}; choose from {', '.join(sections)}")
        sections[name](args)


if __name__ == "__main__":
    main()
