"""Train a tiny LSTM and a tiny Transformer language model on a toy sequence task, with the
hand-written backward passes and Adam, and print the loss falling.

The task, "delayed copy": the first ``delay`` tokens of each sequence are uniform over the vocabulary
and every later token repeats the one ``delay`` steps earlier. The model predicts tokens 1..length
from the ones before them; one that has learnt the rule pays log(vocab) nats for each of tokens
1..delay-1 and nothing after, so the per-token loss falls from log(vocab) towards
(delay - 1) / length * log(vocab).

    python examples/train_sequence_models.py [--steps 300] [--seed 0] [--backend numpy|cupy]
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import argparse  # noqa: E402
import math  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.nn import losses  # noqa: E402
from mini_flows.nn.layers import Dense, Embedding  # noqa: E402
from mini_flows.nn.lstm import LSTM  # noqa: E402
from mini_flows.nn.transformer import TransformerEncoder  # noqa: E402
from mini_flows.optim import Adam  # noqa: E402
from mini_flows.train import Progress, fit  # noqa: E402

VOCAB, LENGTH, DELAY, HIDDEN, BATCH = 8, 16, 3, 32, 32


def delayed_copy_batch(rng, batch: int):
    """Tokens (batch, LENGTH + 1): inputs are [:, :-1], next-token targets [:, 1:]."""
    head = rng.integers(0, VOCAB, size=(batch, DELAY))
    repeats = -(-(LENGTH + 1) // DELAY)
    return B.xp().concatenate([head] * repeats, axis=1)[:, : LENGTH + 1]


class LanguageModel:
    """Embedding -> sequence body (LSTM or causal Transformer) -> Dense -> next-token logits."""

    def __init__(self, body: str):
        self.embed, self.head = Embedding(VOCAB, HIDDEN), Dense(HIDDEN, VOCAB)
        self.kind = body
        self.body = LSTM(HIDDEN, HIDDEN) if body == "lstm" else TransformerEncoder(HIDDEN, 4, 2 * HIDDEN, 2, LENGTH)

    def init(self, rng):
        return {"embed": self.embed.init(rng), "body": self.body.init(rng), "head": self.head.init(rng)}

    def loss_and_grads(self, params, tokens):
        """Mean next-token cross-entropy in nats, and its gradient tree."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        h, c_embed = self.embed.forward(params["embed"], inputs)
        if self.kind == "lstm":
            (h, _), c_body = self.body.forward(params["body"], h)
        else:
            h, c_body = self.body.forward(params["body"], h, causal=True)
        logits, c_head = self.head.forward(params["head"], h)
        nll, c_nll = losses.cross_entropy_forward(logits, targets)
        dlogits = losses.cross_entropy_backward(c_nll, B.xp().full(nll.shape, 1.0 / nll.size))
        g_head, dh = self.head.backward(params["head"], c_head, dlogits)
        if self.kind == "lstm":
            g_body, dh, _ = self.body.backward(params["body"], c_body, dh)
        else:
            g_body, dh = self.body.backward(params["body"], c_body, dh)
        g_embed, _ = self.embed.backward(params["embed"], c_embed, dh)
        return float(nll.mean()), {"embed": g_embed, "body": g_body, "head": g_head}


def train(body: str, steps: int, seed: int) -> None:
    """Adam on the language model with ``train.fit``, printing the running loss six times."""
    model = LanguageModel(body)
    data = B.rng(seed)
    floor = (DELAY - 1) / LENGTH * math.log(VOCAB)
    print(f"\n{body}: per-token loss, nats (chance {math.log(VOCAB):.3f}, learnt rule {floor:.3f})")
    fit(model.loss_and_grads, model.init(B.host_rng(seed)), lambda step: delayed_copy_batch(data, BATCH), steps,
        Adam(lr=3e-3, clip_norm=1.0), reporter=Progress(body, steps, reports=6, unit="nats/token"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy", choices=B.BACKENDS)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    B.set_backend(args.backend)
    for body in ("lstm", "transformer"):
        train(body, args.steps, args.seed)


if __name__ == "__main__":
    main()
