"""The registry of every flow that tests/test_bijections.py checks with the testing kit
(``mini_flows.testing``): a flow joins with one ``Case``.

A case draws, from Hypothesis data and with the kit's strategies, a bijection of the
``mini_flows.bijection`` protocol with noisy parameters, a point x in its base space (the input of
``forward``; any point is a valid input of ``inverse`` too), its context and a host generator
(for a base's parameters, or cotangents). Discrete cases take the (length, K) strategy the test
chooses, since round trips, enumeration and gradient checks need different sizes. Everything is
on the selected backend, so the non-autograd checks also run under ``--backend strict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
from hypothesis import strategies as st

from mini_flows import backend as B
from mini_flows.bijection import DIRECTIONS, Bijection
from mini_flows.chain import Chain
from mini_flows.continuous import AF, IAF, PRIORS, SCF, AffineTransform, Elementwise, FlowStack, NLSqTransform
from mini_flows.continuous.priors import build_prior
from mini_flows.discrete import (DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, DiscreteFlowModel,
                                  FactorizedCategorical, make_network)
from mini_flows.discrete.flows import SPREAD
from mini_flows.nn.tree import Tree
from mini_flows.testing import strategies
from tests.discrete.common import FLOW_CASES, HIDDEN, directions

TRANSFORMS = {"affine": AffineTransform, "nlsq": NLSqTransform}
LAYERS = {"af": AF, "iaf": IAF, "scf": SCF, "none": Elementwise}
Sizes = st.SearchStrategy  # of (length, K), for discrete cases


class Drawn(NamedTuple):
    bijection: Bijection
    params: Tree
    x: Any
    context: Any
    rng: np.random.Generator


@dataclass(frozen=True)
class Case:
    """``draw(data, sizes) -> Drawn``; ``discrete`` cases are checked on one-hot inputs; the
    optional ``check_jacobian(drawn, J)`` adds structural checks of J = d inverse / d data,
    (*lead, event_size, event_size)."""

    name: str
    draw: Callable[[st.DataObject, Sizes], Drawn]
    discrete: bool = False
    differentiable: tuple[str, ...] = DIRECTIONS
    check_jacobian: Callable[[Drawn, np.ndarray], None] | None = None


def host_rng(data: st.DataObject) -> np.random.Generator:
    return B.host_rng(data.draw(strategies.seeds(), label="seed"))


def layer_case(kind: str, transform: str) -> Case:
    """One layer of ``kind`` (either order) or a FlowStack of two, tanh networks: bounded raw
    parameters keep every draw well conditioned (with ReLU, log b grows with |x| and stacked
    layers can overflow), and no unit is ever dead."""

    def draw(data: st.DataObject, sizes: Sizes) -> Drawn:
        dim = data.draw(st.integers(2 if kind == "scf" else 1, 4), label="dim")
        cond_size = data.draw(st.integers(1 if kind == "none" else 0, 2), label="cond_size")
        config = dict(cond_size=cond_size, hidden_sizes=(5,), activation="tanh")
        stacked = data.draw(st.booleans(), label="stacked")
        if stacked:
            flow = FlowStack(kind, dim, 2, TRANSFORMS[transform](), **config)
        elif kind == "none":
            flow = Elementwise(dim, TRANSFORMS[transform](), **config)
        else:
            reverse = data.draw(st.booleans(), label="reverse")
            flow = LAYERS[kind](dim, TRANSFORMS[transform](), reverse=reverse, **config)
        params = data.draw(strategies.params(flow, noise=0.15), label="params")
        lead = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2), label="lead"))
        x = data.draw(strategies.normal_arrays((*lead, dim), scale=1.5), label="x")
        cond = data.draw(strategies.contexts(lead, cond_size), label="context")
        return Drawn(flow, params, x, cond, host_rng(data))

    return Case(f"{kind}-{transform}", draw)


def prior_block_triangular(drawn: Drawn, J: np.ndarray) -> None:
    """d eps_t / d z_s = 0 for s > t (supplement A), and eps_1 depends on z_0 exactly where the
    prior has a time context and the sequence has two real steps."""
    batch, T, H = drawn.x.shape
    blocks = J.reshape(batch, T, H, T, H)
    for t in range(T):
        assert np.all(blocks[:, t, :, t + 1:, :] == 0), "eps_t depends on a later z_s (supplement A)"
    for b, length in enumerate(B.to_numpy(drawn.context)):
        if length >= 2:
            assert np.any(blocks[b, 1, :, 0, :] != 0) == (drawn.bijection.time != "none")


def prior_case(kind: str, transform: str) -> Case:
    """A small sequence prior: H, T, batch and layers drawn, lengths in [1, T]."""

    def draw(data: st.DataObject, sizes: Sizes) -> Drawn:
        H = data.draw(st.integers(2 if kind.endswith("scf") else 1, 3), label="H")
        T, batch = data.draw(st.integers(1, 3), label="T"), data.draw(st.integers(1, 2), label="batch")
        prior = build_prior(kind, H, transform, num_layers=data.draw(st.integers(1, 2), label="layers"),
                            max_length=T + 1, lstm_size=3, hidden_sizes=(5,), activation="tanh")
        params = data.draw(strategies.params(prior, noise=0.3), label="params")
        z = data.draw(strategies.normal_arrays((batch, T, H)), label="z")
        lengths = data.draw(strategies.lengths(T, batch), label="lengths")
        return Drawn(prior, params, z, lengths, host_rng(data))

    return Case(f"prior-{kind}-{transform}", draw, check_jacobian=prior_block_triangular)


def discrete_case(kind: str, network: str) -> Case:
    """A discrete flow of ``kind`` with a ``network`` of drawn order, scale and size, or a Chain of two."""

    def draw(data: st.DataObject, sizes: Sizes) -> Drawn:
        length, K = data.draw(sizes, label="(length, K)")
        scale = data.draw(st.booleans(), label="scale")
        spread = data.draw(st.one_of(st.sampled_from([None, SPREAD]), st.floats(0.01, 3.0)), label="spread")
        flows = []
        for _ in range(data.draw(st.integers(1, 2), label="flows")):
            net = make_network(network, length, K, HIDDEN, scale, autoregressive=kind == "autoregressive")
            direction = data.draw(directions(kind), label="order or keep")
            flows.append(DiscreteAutoregressiveFlow(net, order=direction, spread=spread) if kind == "autoregressive"
                         else DiscreteBipartiteFlow(net, keep=direction, spread=spread))
        flow = flows[0] if len(flows) == 1 else Chain(flows)
        params = data.draw(strategies.params(flow, noise=0.1), label="params")
        x = data.draw(strategies.one_hot_arrays(length, K), label="x")
        return Drawn(flow, params, x, None, host_rng(data))

    return Case(f"{kind}-{network}", draw, discrete=True, differentiable=("inverse",))


CASES = [
    *(layer_case(kind, transform) for kind in LAYERS for transform in TRANSFORMS),
    *(prior_case(kind, "nlsq") for kind in PRIORS),
    prior_case("af/af", "affine"),
    *(discrete_case(kind, network) for kind, network in FLOW_CASES),
]


def on_factorized_base(drawn: Drawn) -> tuple[DiscreteFlowModel, Tree]:
    """A discrete case's flow (one flow or a Chain of them) on a random factorized base, as a
    ``DiscreteFlowModel`` with its parameters, for ``assert_normalized``."""
    flow, params = drawn.bijection, drawn.params
    length, K = drawn.x.shape[1:]
    base = FactorizedCategorical(length, K)
    if isinstance(flow, Chain):  # the model's flows run from the base outwards, a chain's from the data inwards
        flows, trees = flow.bijections[::-1], [params[name] for name in flow.names[::-1]]
    else:
        flows, trees = (flow,), [params]
    model = DiscreteFlowModel(base, flows)
    return model, {"base": base.init(drawn.rng), **{f"flow_{i}": tree for i, tree in enumerate(trees)}}
