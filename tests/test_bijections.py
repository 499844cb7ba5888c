"""The testing kit (``mini_flows.testing``) on every flow of the registry (tests/bijections.py),
the way TFP's ``assert_bijective_and_finite`` and distrax's per-bijector tests work, each check at
the sizes it needs:

  round trips both ways at large sizes: to round-off for continuous flows (with finiteness and
  logdet equal to minus the other direction's), bit for bit for discrete flows on one-hot inputs
  (``assert_round_trips``; on every backend);
  log-det equal to log|det J| of autograd's exact Jacobian, continuous flows
  (``assert_logdet_matches_jacobian``), plus each case's structural check of J;
  the backward pass of each direction in ``differentiable`` equal to autograd's VJP
  (``assert_vjp_matches_autograd``);
  sum over all K^D configurations of p(y) = p_base(f^-1(y)) = 1, discrete flows on a factorized
  base (``assert_normalized``).

tests/test_testing_kit.py runs ``assert_bijection``, all of them at once, on every case.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.bijection import Inverse
from mini_flows.chain import Chain
from mini_flows.discrete import DiscreteBipartiteFlow, make_network
from mini_flows.testing import (assert_logdet_matches_jacobian, assert_normalized, assert_round_trips,
                                assert_vjp_matches_autograd, strategies)
from tests.bijections import CASES, on_factorized_base
from tests.discrete.common import random_one_hot

ROUND_TRIP_SIZES = st.tuples(st.integers(1, 32), st.integers(2, 64))
GRADIENT_SIZES = st.tuples(st.integers(1, 5), st.integers(2, 8))
cases = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
continuous = pytest.mark.parametrize("case", [c for c in CASES if not c.discrete],
                                     ids=[c.name for c in CASES if not c.discrete])
discrete = pytest.mark.parametrize("case", [c for c in CASES if c.discrete], ids=[c.name for c in CASES if c.discrete])


@cases
@given(data=st.data())
def test_round_trips(case, data):
    """A discrete case also starts from a fresh data point y, since forward(x) is onto only when
    the flow is a bijection."""
    drawn = case.draw(data, ROUND_TRIP_SIZES)
    y = None
    if case.discrete:
        batch, length, K = drawn.x.shape
        y = data.draw(strategies.one_hot_arrays(length, K, batch), label="y")
    assert_round_trips(drawn.bijection, drawn.params, drawn.x, drawn.context, y=y, discrete=case.discrete)


@pytest.mark.autograd
@continuous
@given(data=st.data())
def test_logdet_matches_jacobian(case, data):
    drawn = case.draw(data, None)
    y = drawn.bijection.forward(drawn.params, drawn.x, drawn.context)[0]
    J = assert_logdet_matches_jacobian(drawn.bijection, drawn.params, y, drawn.context)
    if case.check_jacobian is not None:
        case.check_jacobian(drawn, J)


@pytest.mark.autograd
@pytest.mark.parametrize("case,direction", [(c, d) for c in CASES for d in c.differentiable],
                         ids=[f"{c.name}-{d}" for c in CASES for d in c.differentiable])
@given(data=st.data())
def test_vjp_matches_autograd(case, direction, data):
    drawn = case.draw(data, GRADIENT_SIZES)
    assert drawn.bijection.differentiable == case.differentiable
    assert_vjp_matches_autograd(drawn.bijection, drawn.params, drawn.x, drawn.context, direction=direction,
                                discrete=case.discrete, seed=data.draw(strategies.seeds(), label="cotangent seed"))


@discrete
@given(data=st.data())
def test_probabilities_sum_to_one(case, data):
    """On a factorized base: inverse maps the K^D configurations onto all K^D, forward undoes it
    bit for bit, and sum_y p_base(f^-1(y)) = 1."""
    assert_normalized(*on_factorized_base(case.draw(data, strategies.enumerable_sizes())))


def test_protocol_composes_and_refuses_what_it_cannot_do():
    """Chain and Inverse: directions swap, an empty chain is the identity, a chain checks its
    entry member's input, and a direction without a backward pass says so."""
    flow = DiscreteBipartiteFlow(make_network("mlp", 3, 4, 4, autoregressive=False))
    chain = Chain([flow, flow], names=["outer", "inner"])
    params = chain.init(B.host_rng(0))
    x = B.asarray(random_one_hot(B.host_rng(1), 2, 3, 4))
    y = chain.forward(params, x)[0]
    inner_first = flow.forward(params["outer"], flow.forward(params["inner"], x)[0])[0]
    assert np.array_equal(B.to_numpy(y), B.to_numpy(inner_first))
    inverted = Inverse(chain)
    assert np.array_equal(B.to_numpy(inverted.inverse(params, x)[0]), B.to_numpy(y))
    assert (chain.differentiable, inverted.differentiable) == (("inverse",), ("forward",))
    with pytest.raises(TypeError, match="not differentiable in the forward direction"):
        chain.vjp("forward")
    with pytest.raises(TypeError, match="not differentiable in the inverse direction"):
        inverted.vjp("inverse")
    with pytest.raises(ValueError, match="one-hot"):
        chain.inverse(params, 0.5 * x)
    identity = Chain([], event_ndim=2)
    value, logdet, _ = identity.inverse({}, x)
    assert value is x and logdet.shape == (2,) and not np.any(B.to_numpy(logdet))
    with pytest.raises(ValueError, match="one distinct name per member"):
        Chain([flow, flow], names=["a", "a"])
    with pytest.raises(ValueError, match="share event_ndim"):
        Chain([])
