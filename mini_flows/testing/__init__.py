"""mini_flows.testing: the property-testing kit the project checks its own flows with.

    assert_bijection(flow, params, x, context)   round trips both ways (bit-exact for discrete
                                                 flows), finite values, log-det against autograd's
                                                 Jacobian, each differentiable VJP against autograd
    assert_normalized(model, params)             sum_y p(y) = 1 over all K^D sequences
    strategies                                   Hypothesis strategies: one-hot and token arrays,
                                                 lengths, parameters from init, contexts

Each assertion raises AssertionError that names the failed check, the largest error and where it
is. ``assert_round_trips``, ``assert_logdet_matches_jacobian`` and ``assert_vjp_matches_autograd``
are the parts of ``assert_bijection``; ``assert_inverse_pair`` and ``assert_jacobian_logdet`` check
two plain maps that are no ``Bijection``; ``autograd_grads``, ``vjp_loss`` and
``assert_grads_close`` check any hand-written backward pass against autograd. Autograd traces
NumPy only, so the checks that use it run on the "numpy" backend.

It needs Hypothesis (``pip install 'mini-flows[test]'``), besides NumPy and autograd; not pytest.
See examples/test_your_own_flow.py for a flow of one's own, checked and caught with a planted bug.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as error:
    raise ImportError("mini_flows.testing needs hypothesis, which is not installed: "
                      "pip install 'mini-flows[test]'") from error

from mini_flows.testing import strategies  # noqa: E402
from mini_flows.testing.bijections import (  # noqa: E402
    assert_bijection,
    assert_logdet_matches_jacobian,
    assert_round_trips,
    assert_vjp_matches_autograd,
)
from mini_flows.testing.compare import assert_close, assert_grads_close  # noqa: E402
from mini_flows.testing.gradients import autograd_grads, vjp_loss  # noqa: E402
from mini_flows.testing.maps import assert_inverse_pair, assert_jacobian_logdet  # noqa: E402
from mini_flows.testing.normalization import MAX_SEQUENCES, assert_normalized  # noqa: E402

__all__ = [
    "MAX_SEQUENCES",
    "assert_bijection",
    "assert_close",
    "assert_grads_close",
    "assert_inverse_pair",
    "assert_jacobian_logdet",
    "assert_logdet_matches_jacobian",
    "assert_normalized",
    "assert_round_trips",
    "assert_vjp_matches_autograd",
    "autograd_grads",
    "strategies",
    "vjp_loss",
]
