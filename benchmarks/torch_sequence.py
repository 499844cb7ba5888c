"""PyTorch counterparts of mini_flows' LSTM, BiLSTM and pre-layer-norm Transformer block, for
benchmarks/sequence_models.py only; mini_flows never imports PyTorch.

Each ``*_step(batch, length, width, dtype)`` returns a function that runs one training step's
forward and backward pass (the loss is the sum of the outputs times a fixed random tensor, as in
the mini_flows rows), with the sizes and layout of the mini_flows block:
- LSTM: ``torch.nn.LSTM(width, width, batch_first=True)``, one layer;
- BiLSTM: the same with ``bidirectional=True``;
- Transformer block: x + attention(LN(x)), then + W2 gelu_tanh(W1 LN(x) + b1) + b2, 4 heads,
  d_ff = 4 width, causal, attention by ``scaled_dot_product_attention`` (torch's fused kernel)
  or, with ``plain=True``, softmax(Q K^T / sqrt(d) + mask) V written out.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

torch.set_num_threads(1)

HEADS = 4


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[name]


def _step(module: torch.nn.Module, x: torch.Tensor, out_width: int) -> Callable[[], None]:
    """Forward and backward of sum(module(x) * dy), gradients to the parameters and to x."""
    dy = torch.randn(*x.shape[:2], out_width, dtype=x.dtype)

    def step() -> None:
        module.zero_grad(set_to_none=True)
        y = module(x)
        y = y[0] if isinstance(y, tuple) else y
        (y * dy).sum().backward()

    return step


def lstm_step(batch: int, length: int, width: int, dtype: str, bidirectional: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(width, width, batch_first=True, bidirectional=bidirectional).to(_dtype(dtype))
    x = torch.randn(batch, length, width, dtype=_dtype(dtype), requires_grad=True)
    return _step(lstm, x, (2 if bidirectional else 1) * width)


class Block(torch.nn.Module):
    """The pre-layer-norm block of ``mini_flows.nn.transformer.TransformerBlock``, causal."""

    def __init__(self, width: int, plain: bool):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.fc1, self.fc2 = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)
        self.plain = plain

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        batch, T, width = h.shape
        q, k, v = (a.reshape(batch, T, HEADS, width // HEADS).transpose(1, 2) for a in self.qkv(h).chunk(3, -1))
        if self.plain:
            scores = q @ k.transpose(-1, -2) / math.sqrt(width // HEADS)
            causal = torch.ones(T, T, dtype=torch.bool).triu(1)
            a = torch.softmax(scores.masked_fill(causal, -math.inf), dim=-1) @ v
        else:
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(a.transpose(1, 2).reshape(batch, T, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


def transformer_step(batch: int, length: int, width: int, dtype: str, plain: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    block = Block(width, plain).to(_dtype(dtype))
    x = torch.randn(batch, length, width, dtype=_dtype(dtype), requires_grad=True)
    return _step(block, x, width)
