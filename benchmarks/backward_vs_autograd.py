"""One training step (forward + backward) with the hand-written backward versus autograd on the
same forward code, for the LSTM, the BiLSTM and the Transformer block.

    python benchmarks/backward_vs_autograd.py [--batch 32] [--length 64] [--hidden 64] [--repeats 5]

Both paths are timed in the same run, interleaved, and the table reports medians and their ratio.
Runs on the NumPy backend (autograd cannot trace CuPy arrays).
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
import statistics  # noqa: E402
from typing import Any, Callable  # noqa: E402

import autograd  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.nn.lstm import LSTM, BiLSTM  # noqa: E402
from mini_flows.nn.transformer import TransformerBlock  # noqa: E402


def _lstm_case(rng, batch, length, hidden):
    block = LSTM(hidden, hidden)
    x, dy = rng.standard_normal((batch, length, hidden)), rng.standard_normal((batch, length, hidden))

    def hand(p):
        (out, _), cache = block.forward(p, x)
        return block.backward(p, cache, dy)

    return block.init(rng), hand, lambda p: (block.forward(p, x)[0][0] * dy).sum()


def _bilstm_case(rng, batch, length, hidden):
    block = BiLSTM(hidden, hidden)
    x, dy = rng.standard_normal((batch, length, hidden)), rng.standard_normal((batch, length, 2 * hidden))

    def hand(p):
        out, cache = block.forward(p, x)
        return block.backward(p, cache, dy)

    return block.init(rng), hand, lambda p: (block.forward(p, x)[0] * dy).sum()


def _transformer_case(rng, batch, length, hidden):
    block = TransformerBlock(hidden, 4, 4 * hidden)
    x, dy = rng.standard_normal((batch, length, hidden)), rng.standard_normal((batch, length, hidden))

    def hand(p):
        y, cache = block.forward(p, x, causal=True)
        return block.backward(p, cache, dy)

    return block.init(rng), hand, lambda p: (block.forward(p, x, causal=True)[0] * dy).sum()


CASES: dict[str, Callable[..., Any]] = {
    "LSTM": _lstm_case,
    "BiLSTM": _bilstm_case,
    "Transformer block (causal)": _transformer_case,
}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    B.set_backend("numpy")
    print(f"batch {args.batch}, length {args.length}, hidden {args.hidden}, float64, median of {args.repeats}")
    print(f"{'block':<28}{'hand-written (ms)':>18}{'autograd (ms)':>15}{'speed-up':>10}")
    for name, make in CASES.items():
        params, hand, loss = make(B.host_rng(0), args.batch, args.length, args.hidden)
        grad = autograd.grad(loss)
        hand(params)
        hand_times, auto_times = [], []
        for _ in range(args.repeats):
            hand_times.append(B.wall_seconds(lambda: hand(params)))
            with B.use_autograd():
                auto_times.append(B.wall_seconds(lambda: grad(params)))
        h, a = statistics.median(hand_times), statistics.median(auto_times)
        print(f"{name:<28}{1e3 * h:>18.1f}{1e3 * a:>15.1f}{a / h:>9.1f}x")


if __name__ == "__main__":
    main()
