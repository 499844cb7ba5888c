"""Test your own flow with the kit (``mini_flows.testing``): a flow written against the
``Bijection`` protocol, checked on inputs Hypothesis draws, and the same flow with a planted bug,
which the kit catches and names.

The flow is the elementwise affine map y = x exp(log_scale) + shift on x : (*lead, dim), with
log|det dy/dx| = sum(log_scale) per sample and both backward passes written by hand.
``assert_bijection`` checks on every draw its round trips both ways, its log-det against
autograd's Jacobian and both VJPs against autograd. The planted bug is the one a hand-written
backward pass most often has: ``ForgetfulAffine.forward_vjp`` drops the log-det's gradient with
respect to log_scale.

Run: python examples/test_your_own_flow.py, or python -m pytest examples/test_your_own_flow.py
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

from typing import Any  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from mini_flows.backend import Array  # noqa: E402
from mini_flows.bijection import VJP, Bijection, Result  # noqa: E402
from mini_flows.checks import check_float, check_shape  # noqa: E402
from mini_flows.nn.tree import Tree  # noqa: E402
from mini_flows.testing import assert_bijection, strategies  # noqa: E402


class ElementwiseAffine(Bijection):
    """y = x exp(log_scale) + shift, x and y : (*lead, dim); parameters "shift" and "log_scale" : (dim,)."""

    event_ndim = 1

    def __init__(self, dim: int):
        self.dim = dim

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {name: B.asarray(0.1 * rng.standard_normal(self.dim), B.float_dtype(dtype))
                for name in ("shift", "log_scale")}

    def check_inputs(self, params: Tree, v: Array, context: Any, direction: str) -> None:
        name = "x" if direction == "forward" else "y"
        check_float(name, v, like=params["shift"])
        check_shape(name, v, (None,) * (B.value(v).ndim - 1) + (self.dim,))
        if context is not None:
            raise ValueError("context must be None: ElementwiseAffine takes no context")

    def _forward(self, params: Tree, x: Array, context: None) -> Result:
        s = params["log_scale"]
        return x * B.xp().exp(s) + params["shift"], (B.xp().zeros_like(x) + s).sum(-1), x

    def _inverse(self, params: Tree, y: Array, context: None) -> Result:
        s = params["log_scale"]
        x = (y - params["shift"]) * B.xp().exp(-s)
        return x, -(B.xp().zeros_like(y) + s).sum(-1), x

    def forward_vjp(self, params: Tree, cache: Array, dy: Array, dlogdet: Array) -> VJP:
        x, scale = cache, B.xp().exp(params["log_scale"])
        grads = {"shift": dy.reshape(-1, self.dim).sum(0),
                 "log_scale": (dy * x * scale).reshape(-1, self.dim).sum(0) + dlogdet.sum()}
        return grads, dy * scale, None

    def inverse_vjp(self, params: Tree, cache: Array, dx: Array, dlogdet: Array) -> VJP:
        x, inv_scale = cache, B.xp().exp(-params["log_scale"])
        grads = {"shift": -(dx * inv_scale).reshape(-1, self.dim).sum(0),
                 "log_scale": -(dx * x).reshape(-1, self.dim).sum(0) - dlogdet.sum()}
        return grads, dx * inv_scale, None


class ForgetfulAffine(ElementwiseAffine):
    """The planted bug: the forward VJP forgets that the log-det depends on log_scale."""

    def forward_vjp(self, params: Tree, cache: Array, dy: Array, dlogdet: Array) -> VJP:
        return super().forward_vjp(params, cache, dy, 0 * dlogdet)


FLOW, BUGGY = ElementwiseAffine(3), ForgetfulAffine(3)
POINTS = st.lists(st.integers(1, 3), max_size=2).flatmap(lambda lead: strategies.normal_arrays((*lead, 3), scale=2.0))
"""x : (*lead, 3) with up to two lead axes (none: a single point, logdet a scalar)."""


@settings(deadline=None)
@given(params=strategies.params(FLOW, noise=0.5), x=POINTS)
def test_elementwise_affine_is_a_flow(params: Tree, x: Array) -> None:
    assert_bijection(FLOW, params, x)


@settings(deadline=None)
@given(params=strategies.params(BUGGY, noise=0.5), x=POINTS)
def test_the_kit_catches_the_forgotten_logdet_gradient(params: Tree, x: Array) -> None:
    try:
        assert_bijection(BUGGY, params, x)
    except AssertionError as error:
        assert str(error).startswith("VJP of forward against autograd, params/log_scale"), error
    else:
        raise AssertionError("the kit passed a forward VJP that drops the log-det's gradient")


def main() -> None:
    test_elementwise_affine_is_a_flow()
    print("ElementwiseAffine: round trips, log-det and both VJPs agree with autograd on every drawn input")
    test_the_kit_catches_the_forgotten_logdet_gradient()
    print("ForgetfulAffine: the kit caught the planted bug on every drawn input; on one of them it says")
    try:
        assert_bijection(BUGGY, BUGGY.init(B.host_rng(0)), B.asarray(B.host_rng(1).standard_normal((2, 3))))
    except AssertionError as error:
        print(f"  AssertionError: {error}")


if __name__ == "__main__":
    main()
