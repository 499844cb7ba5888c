"""The testing kit (mini_flows.testing) passes every flow of the registry and catches planted bugs
of each kind, naming the check that failed and by how much; its strategies draw what they say;
without Hypothesis it refuses to import, naming the extra to install."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mini_flows import backend as B
from mini_flows.bijection import Bijection
from mini_flows.discrete import DiscreteFlowModel, build_model
from mini_flows.nn.tree import flatten, tree_map
from mini_flows.testing import (assert_bijection, assert_close, assert_normalized, assert_round_trips,
                                strategies)
from tests.bijections import CASES, on_factorized_base

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_your_own_flow.py"
GRADIENT_SIZES = st.tuples(st.integers(1, 5), st.integers(2, 8))
PLANTED_ON = [c for c in CASES if c.name in ("af-nlsq", "scf-affine", "prior-af/scf-nlsq")]
planted_on = pytest.mark.parametrize("case", PLANTED_ON, ids=[c.name for c in PLANTED_ON])
a_few = settings(max_examples=max(2, settings().max_examples // 5))
"""A fifth of the profile's examples: tests/test_bijections.py runs each check on the full count."""


class Planted(Bijection):
    """A flow of the registry with one planted bug:

    "logdet sign": both logdets negated, consistently (round trips and VJPs still agree);
    "inverse offset": inverse returns x + 1e-3;
    "vjp factor": the forward VJP's parameter gradients multiplied by 1.5.
    """

    def __init__(self, flow: Bijection, bug: str):
        self.flow, self.bug = flow, bug
        self.event_ndim, self.differentiable = flow.event_ndim, flow.differentiable

    def init(self, rng, dtype="float64"):
        return self.flow.init(rng, dtype)

    def check_inputs(self, params, v, context, direction):
        self.flow.check_inputs(params, v, context, direction)

    def _sign(self):
        return -1 if self.bug == "logdet sign" else 1

    def _forward(self, params, x, context):
        y, logdet, cache = self.flow.forward(params, x, context, check=False)
        return y, self._sign() * logdet, cache

    def _inverse(self, params, y, context):
        x, logdet, cache = self.flow.inverse(params, y, context, check=False)
        return x + (1e-3 if self.bug == "inverse offset" else 0), self._sign() * logdet, cache

    def forward_vjp(self, params, cache, dy, dlogdet):
        grads, dx, dcontext = self.flow.forward_vjp(params, cache, dy, self._sign() * dlogdet)
        factor = 1.5 if self.bug == "vjp factor" else 1
        return tree_map(lambda g: factor * g, grads), dx, dcontext

    def inverse_vjp(self, params, cache, dx, dlogdet):
        return self.flow.inverse_vjp(params, cache, dx, self._sign() * dlogdet)


class Inflated(DiscreteFlowModel):
    """A discrete flow model whose log_prob is 0.01 too high: its probabilities sum to exp(0.01)."""

    def log_prob(self, params, tokens):
        return super().log_prob(params, tokens) + 0.01


@pytest.mark.autograd
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@a_few
@given(data=st.data())
def test_the_kit_passes_every_flow_of_the_registry(case, data):
    """assert_bijection, every check at once, and for a discrete flow assert_normalized on a base."""
    drawn = case.draw(data, strategies.enumerable_sizes(max_length=4) if case.discrete else GRADIENT_SIZES)
    assert_bijection(drawn.bijection, drawn.params, drawn.x, drawn.context, discrete=case.discrete)
    if case.discrete:
        assert_normalized(*on_factorized_base(drawn))


PLANTED_BUGS = {  # a bug planted in a flow, and the check that must name it, with the error it reports
    "logdet sign": r"^log-det against autograd's Jacobian: logdet == log\|det J\|: max abs error \S+ at ",
    "inverse offset": r"^round trip inverse\(forward\(x\)\) == x: max abs error 1\.000e-03 at ",
    "vjp factor": r"^VJP of forward against autograd, params/\S+: max abs error \S+ at .*> 1e-08 x gradient scale",
}


@pytest.mark.autograd
@pytest.mark.parametrize("bug", PLANTED_BUGS)
@planted_on
@a_few
@given(data=st.data())
def test_a_planted_bug_is_caught_by_the_check_it_breaks(bug, case, data):
    """A wrong log-det sign by the Jacobian check, an inverse off by 1e-3 by the round trip, a VJP
    off by a factor by the VJP check."""
    b, params, x, context, _ = case.draw(data, None)
    with pytest.raises(AssertionError, match=PLANTED_BUGS[bug]):
        assert_bijection(Planted(b, bug), params, x, context)


@pytest.mark.parametrize("kind,network", [("bipartite", "mlp"), ("autoregressive", "lstm")])
def test_a_model_whose_probabilities_sum_to_exp_001_is_caught(kind, network):
    model = build_model(kind, vocab_size=3, length=4, num_flows=2, network=network, hidden=8)
    params = model.init(B.host_rng(0))
    assert_normalized(model, params)
    assert_normalized(model.base, params["base"])
    with pytest.raises(AssertionError, match=r"^normalization sum_y p\(y\) = 1: the probabilities of all 3\^4 = 81 "
                                             r"sequences sum to 1\.01005\d* \(log of the sum = 1\.000e-02\)"):
        assert_normalized(Inflated(model.base, model.flows), params)


class Collapse(Bijection):
    """A map of one-hot sequences that is no bijection of them: inverse sends token K - 1 to 0,
    forward is the identity."""

    event_ndim, differentiable = 2, ()

    def __init__(self, length, vocab_size):
        self.length, self.vocab_size = length, vocab_size

    def init(self, rng, dtype="float64"):
        return {}

    def check_inputs(self, params, v, context, direction):
        pass

    def _forward(self, params, x, context):
        return x, B.xp().zeros(x.shape[0]), None

    def _inverse(self, params, y, context):
        xp = B.xp()
        moved = xp.concatenate([y[..., :1] + y[..., -1:], y[..., 1:-1], xp.zeros_like(y[..., -1:])], axis=-1)
        return moved, xp.zeros(y.shape[0]), None


class Rotate(Collapse):
    """A bijection of the sequences whose forward does not undo its inverse: inverse adds 1 mod K
    to every token, forward is the identity."""

    def _inverse(self, params, y, context):
        return B.xp().roll(y, 1, axis=-1), B.xp().zeros(y.shape[0]), None


class Halve(Collapse):
    """An inverse that leaves the one-hot vectors: 0.5 y."""

    def _inverse(self, params, y, context):
        return 0.5 * y, B.xp().zeros(y.shape[0]), None


def test_flows_that_are_no_bijection_of_the_sequences_are_caught():
    base = build_model("bipartite", vocab_size=3, length=2).base
    params = {"base": base.init(B.host_rng(0)), "flow_0": {}}
    for flow in (Collapse(2, 3), Rotate(2, 3)):
        with pytest.raises(AssertionError, match=r"^flows are a bijection of the sequences: forward\(inverse\(y\)\) == "
                                                 r"y: max abs error 1\.000e\+00 at index \(\d+, \d, \d\) "
                                                 r".* bit for bit$"):
            assert_normalized(DiscreteFlowModel(base, [flow]), params)
    with pytest.raises(AssertionError, match=r"^one-hot values: the flows' inverse of the sequences is not one-hot at "
                                             r"position \(0, 0\) \(18 of 18 positions\)$"):
        assert_normalized(DiscreteFlowModel(base, [Halve(2, 3)]), params)


def test_a_discrete_round_trip_off_the_one_hot_vectors_is_caught():
    flow = Planted(build_model("bipartite", vocab_size=4, length=3, network="mlp").flows[0], "inverse offset")
    x = B.asarray(np.eye(4)[[[0, 1, 2], [3, 3, 0]]])
    with pytest.raises(AssertionError, match=r"^one-hot values: inverse\(forward\(x\)\) is not one-hot at "
                                             r"position \(0, 0\)"):
        assert_round_trips(flow, flow.init(B.host_rng(0)), x, discrete=True)


def test_the_autograd_checks_refuse_other_backends_before_any_work():
    flow = build_model("bipartite", vocab_size=4, length=3, network="mlp").flows[0]
    with B.use_backend("strict"):
        params, x = flow.init(B.host_rng(0)), B.asarray(np.eye(4)[[[0, 1, 2]]])
        with pytest.raises(B.BackendUnavailableError, match=r"^assert_bijection compares with autograd, which "
                                                            r"differentiates NumPy arrays only"):
            assert_bijection(flow, params, x, discrete=True)
        assert_round_trips(flow, params, x, discrete=True)


def test_assert_normalized_refuses_what_it_cannot_enumerate():
    model = build_model("bipartite", vocab_size=10, length=6, network="mlp")
    with pytest.raises(ValueError, match=r"^model has vocab_size\^length = 10\^6 sequences, more than max_sequences = "
                                         r"65536 that assert_normalized enumerates"):
        assert_normalized(model, model.init(B.host_rng(0)))
    with pytest.raises(ValueError, match="max_sequences must be an integer >= 1"):
        assert_normalized(model, model.init(B.host_rng(0)), max_sequences=0)
    with pytest.raises(ValueError, match="model must be a DiscreteFlowModel or a discrete base"):
        assert_normalized(object(), {})


def test_assert_close_says_by_how_much_and_where():
    with pytest.raises(AssertionError) as caught:
        assert_close(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.5, 4.0]]), rtol=1e-9, atol=0.0,
                     check="my check")
    assert str(caught.value) == ("my check: max abs error 5.000e-01 at index (1, 0) (got 3.0, expected 3.5), max rel "
                                 "error 1.429e-01; 1 of 4 entries differ beyond atol 0 + rtol 1e-09 |expected|")
    assert_close(np.array([1.0]), np.array([1.0 + 1e-12]), rtol=1e-9, atol=0.0, check="within tolerance")


@given(data=st.data())
def test_the_strategies_draw_what_they_say(data):
    length, K = data.draw(strategies.enumerable_sizes(max_length=3, max_sequences=100))
    assert 1 <= length <= 3 and 2 <= K and K**length <= 100
    tokens = B.to_numpy(data.draw(strategies.token_arrays(length, K, batch=st.integers(2, 4))))
    assert tokens.shape[1] == length and 2 <= tokens.shape[0] <= 4 and tokens.min() >= 0 and tokens.max() < K
    x = B.to_numpy(data.draw(strategies.one_hot_arrays(length, K, batch=2, dtype="float32")))
    assert x.shape == (2, length, K) and x.dtype == np.float32
    assert (x.sum(-1) == 1).all() and set(np.unique(x)) <= {0, 1}
    lengths = B.to_numpy(data.draw(strategies.lengths(5, batch=3)))
    assert lengths.shape == (3,) and lengths.min() >= 1 and lengths.max() <= 5
    assert data.draw(strategies.contexts((2,), 0)) is None
    assert B.to_numpy(data.draw(strategies.contexts(st.just((2, 3)), st.integers(1, 2)))).shape[:2] == (2, 3)
    flow = CASES[0].draw(data, None).bijection
    init, noisy = flatten(flow.init(B.host_rng(0))), flatten(data.draw(strategies.params(flow, noise=0.1)))
    assert init.keys() == noisy.keys() and all(B.to_numpy(noisy[k]).shape == B.to_numpy(init[k]).shape for k in init)
    with pytest.raises(ValueError, match="max_sequences = 10 is below 2\\^max_length = 2\\^6"):
        strategies.enumerable_sizes(max_length=6, max_sequences=10)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        strategies.params(flow, noise=-1.0)


def test_without_hypothesis_the_kit_names_the_test_extra():
    code = "import sys; sys.modules['hypothesis'] = None; import mini_flows.testing"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == ("ImportError: mini_flows.testing needs hypothesis, which is not "
                                                      "installed: pip install 'mini-flows[test]'")


@pytest.mark.autograd
def test_the_example_checks_a_flow_and_catches_its_planted_bug(capsys):
    spec = importlib.util.spec_from_file_location("test_your_own_flow_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ElementwiseAffine: round trips, log-det and both VJPs agree with autograd")
    assert out[1].startswith("ForgetfulAffine: the kit caught the planted bug on every drawn input")
    assert out[2].startswith("  AssertionError: VJP of forward against autograd, params/log_scale: max abs error")
