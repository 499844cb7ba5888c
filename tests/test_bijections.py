"""One harness for every flow of the registry (tests/bijections.py), the way TFP's
``assert_bijective_and_finite`` and distrax's per-bijector tests work:

  round trips both ways: to round-off for continuous flows (with finiteness and logdet equal to
  minus the other direction's), bit for bit for discrete flows on one-hot inputs;
  log-det equal to log|det J| of autograd's exact Jacobian (continuous flows);
  the backward pass of each direction in ``differentiable`` equal to autograd's VJP;
  sum over all K^D configurations of p(y) = p_base(f^-1(y)) exp(logdet) = 1 (discrete flows).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.bijection import Inverse
from mini_flows.chain import Chain
from mini_flows.discrete import DiscreteBipartiteFlow, FactorizedCategorical, make_network
from mini_flows.nn.tree import flatten
from tests.bijections import CASES, Drawn
from tests.continuous.harness import check_bijection, check_logdet_against_jacobian
from tests.discrete.common import all_tokens, enumerable_sizes, one_hot, random_one_hot
from tests.gradcheck import assert_grads_close, autograd_grads, vjp_loss

ROUND_TRIP_SIZES = st.tuples(st.integers(1, 32), st.integers(2, 64))
GRADIENT_SIZES = st.tuples(st.integers(1, 5), st.integers(2, 8))
cases = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
continuous = pytest.mark.parametrize("case", [c for c in CASES if not c.discrete],
                                     ids=[c.name for c in CASES if not c.discrete])
discrete = pytest.mark.parametrize("case", [c for c in CASES if c.discrete], ids=[c.name for c in CASES if c.discrete])


def maps(drawn: Drawn):
    """forward and inverse as v -> (value, logdet), for the harness."""
    b, params, context = drawn.bijection, drawn.params, drawn.context
    return (lambda v: b.forward(params, v, context)[:2]), (lambda v: b.inverse(params, v, context)[:2])


def assert_one_hot(v: np.ndarray) -> None:
    assert set(np.unique(v)) <= {0.0, 1.0} and (v.sum(axis=-1) == 1).all()


@cases
@given(data=st.data())
def test_round_trips(case, data):
    drawn = case.draw(data, ROUND_TRIP_SIZES)
    b, x = drawn.bijection, drawn.x
    lead = tuple(x.shape[: x.ndim - b.event_ndim])
    forward, inverse = maps(drawn)
    if not case.discrete:
        _, logdet = check_bijection(forward, inverse, x)
        assert logdet.shape == lead
        return
    y, logdet = forward(x)
    assert_one_hot(B.to_numpy(y))
    assert np.array_equal(B.to_numpy(inverse(y)[0]), B.to_numpy(x))
    y = B.asarray(random_one_hot(drawn.rng, *x.shape[:2], x.shape[2]))
    x_back, logdet_inv = inverse(y)
    assert_one_hot(B.to_numpy(x_back))
    assert np.array_equal(B.to_numpy(forward(x_back)[0]), B.to_numpy(y))
    for ld in (logdet, logdet_inv):
        assert ld.shape == lead and not np.any(B.to_numpy(ld))


@pytest.mark.autograd
@continuous
@given(data=st.data())
def test_logdet_matches_jacobian(case, data):
    drawn = case.draw(data, None)
    forward, inverse = maps(drawn)
    J = check_logdet_against_jacobian(inverse, forward(drawn.x)[0])
    if case.check_jacobian is not None:
        case.check_jacobian(drawn, J)


@pytest.mark.autograd
@pytest.mark.parametrize("case,direction", [(c, d) for c in CASES for d in c.differentiable],
                         ids=[f"{c.name}-{d}" for c in CASES for d in c.differentiable])
@given(data=st.data())
def test_vjp_matches_autograd(case, direction, data):
    drawn = case.draw(data, GRADIENT_SIZES)
    b, params, x, context, rng = drawn
    assert b.differentiable == case.differentiable
    run = getattr(b, direction)
    y, logdet, cache = run(params, x, context)
    dy, dlogdet = rng.standard_normal(y.shape), rng.standard_normal(logdet.shape)
    hand = b.vjp(direction)(params, cache, dy, dlogdet)

    def loss(p, x, c=context):
        y, logdet, _ = run(p, x, c)
        return vjp_loss(y, dy) + vjp_loss(logdet, dlogdet)

    # A discrete chain's round-off scales with its largest gradient, not each leaf's own: a leaf
    # behind a saturated straight-through factor can be ~1e-7 and carry 1e-14 from gradients of 1.
    floor = 1e-6
    if context is not None and np.issubdtype(np.asarray(context).dtype, np.floating):
        auto = autograd_grads(loss, params, x, context)
    else:
        assert hand[2] is None
        hand, auto = hand[:2], autograd_grads(loss, params, x)
        if case.discrete:
            floor = max(max(float(np.max(np.abs(a))) for a in flatten(auto[0]).values()), floor)
    assert_grads_close(hand, auto, floor=floor)


@discrete
@given(data=st.data())
def test_probabilities_sum_to_one(case, data):
    """On a factorized base: inverse maps the K^D configurations onto all K^D, forward undoes it
    bit for bit, and sum_y p_base(f^-1(y)) exp(logdet) = 1."""
    drawn = case.draw(data, enumerable_sizes())
    b, params = drawn.bijection, drawn.params
    length, K = drawn.x.shape[1:]
    base = FactorizedCategorical(length, K)
    y = B.asarray(one_hot(all_tokens(length, K), K))
    x, logdet, _ = b.inverse(params, y)
    assert len(np.unique(B.to_numpy(x).argmax(-1), axis=0)) == K**length
    assert np.array_equal(B.to_numpy(b.forward(params, x)[0]), B.to_numpy(y))
    log_p = base.log_prob(base.init(drawn.rng), x)[0] + logdet
    assert abs(float(np.exp(B.to_numpy(log_p)).sum()) - 1) < 1e-9


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
