"""Autograd as the oracle for hand-written backward passes: the kit's helpers
(``mini_flows.testing.gradients`` and ``mini_flows.testing.compare``), under the one module name
the tests of every block and model import them from."""

from mini_flows.testing.compare import assert_grads_close, safe_note, tree_floor
from mini_flows.testing.gradients import autograd_grads, vjp_loss

__all__ = ["assert_grads_close", "autograd_grads", "safe_note", "tree_floor", "vjp_loss"]
