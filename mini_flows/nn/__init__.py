"""Tiny differentiable blocks, each with a forward pass and a hand-written backward pass, all
in one convention (``block.Block``)."""
