"""Tiny differentiable blocks, each with a forward pass and a hand-written backward pass."""
