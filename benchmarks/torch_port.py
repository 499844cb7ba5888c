"""The bipartite MLP training step in PyTorch, written the way the reference PyTorch port of
Tran et al. (2019) writes its modular arithmetic: a stack of K rolls (or K permutations) of the
one-hot operand and an einsum against the other, O(K^2) per position, with PyTorch's autograd
for the backward pass. For benchmarks/discrete.py only; mini_flows never imports PyTorch.

The model matches ``build_model("bipartite", K, 64, num_flows=4, scale, hidden=64,
network="mlp")``: a factorized base, 4 flows alternating the kept half, each an MLP with one
hidden ReLU layer of 64 units on the masked one-hot inputs plus a per-position bias, the
straight-through argmax at tau = 0.1, float64.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

D, BATCH, HIDDEN, FLOWS, TAU = 64, 64, 64, 4, 0.1


def one_hot_add(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """y[m] = sum_j shift[j] x[(m - j) mod K]: rolled[..., j, :] = roll(x, j)."""
    rolled = torch.stack([torch.roll(x, j, dims=-1) for j in range(x.shape[-1])], dim=-2)
    return torch.einsum("...j,...jm->...m", shift, rolled)


def one_hot_minus(y: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x[m] = sum_j shift[j] y[(m + j) mod K]."""
    rolled = torch.stack([torch.roll(y, -j, dims=-1) for j in range(y.shape[-1])], dim=-2)
    return torch.einsum("...j,...jm->...m", shift, rolled)


def one_hot_multiply(x: torch.Tensor, scale: torch.Tensor, units: list[int], inverses: list[int]) -> torch.Tensor:
    """y[m] = sum_{j unit} scale[j] x[(m j^-1) mod K]: one permutation of x per unit."""
    K = x.shape[-1]
    m = torch.arange(K)
    permuted = torch.stack([x[..., (m * inv) % K] for inv in inverses], dim=-2)
    return torch.einsum("...j,...jm->...m", scale[..., units], permuted)


def one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Straight-through: one_hot(argmax) forward, softmax(logits / tau) backward."""
    soft = torch.softmax(logits / TAU, dim=-1)
    hard = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return hard + soft - soft.detach()


def torch_step(K: int, scale: bool) -> Callable[[], None]:
    """One training step (loss and gradients) of the bipartite MLP model at vocabulary size K."""
    torch.manual_seed(0)
    dtype = torch.float64
    heads = 2 if scale else 1
    units = [j for j in range(1, K) if math.gcd(j, K) == 1]
    inverses = [pow(j, -1, K) for j in units]
    unit = torch.tensor([float(math.gcd(j, K) == 1) for j in range(K)], dtype=dtype)
    masked = torch.where(unit > 0, 0.0, -1e30).to(dtype)
    base = torch.zeros(D, K, dtype=dtype, requires_grad=True)
    nets = [torch.nn.Sequential(torch.nn.Linear(D * K, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, D * heads * K)).to(dtype) for _ in range(FLOWS)]
    biases = [(0.1 * torch.randn(D, heads * K, dtype=dtype)).requires_grad_() for _ in range(FLOWS)]
    params = [base, *biases, *(p for net in nets for p in net.parameters())]
    y = torch.nn.functional.one_hot(torch.randint(0, K, (BATCH, D)), K).to(dtype)

    def step() -> None:
        h = y
        for i in reversed(range(FLOWS)):
            kept, moved = (slice(0, None, 2), slice(1, None, 2)) if i % 2 == 0 else (slice(1, None, 2), slice(0, None, 2))
            mask = torch.zeros(D, 1, dtype=dtype)
            mask[kept] = 1
            out = nets[i]((h * mask).reshape(BATCH, -1)).reshape(BATCH, D, heads * K) + biases[i]
            mu = one_hot_argmax(out[:, moved, :K])
            r = one_hot_minus(h[:, moved], mu)
            if scale:
                sigma = one_hot_argmax(out[:, moved, K:] + masked)
                sigma_inv = torch.zeros_like(sigma)
                sigma_inv[..., units] = sigma[..., inverses]
                r = one_hot_multiply(r, sigma_inv, units, inverses)
            h = _join(h, moved, r)
        loss = -(torch.log_softmax(base, -1) * h).sum((1, 2)).mean()
        for p in params:
            p.grad = None
        loss.backward()
    return step


def _join(h: torch.Tensor, moved: slice, new: torch.Tensor) -> torch.Tensor:
    """h with its moved positions replaced by ``new`` (out of place, so autograd records it)."""
    out = h.clone()
    out[:, moved] = new
    return out
