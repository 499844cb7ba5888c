"""Shared by the discrete-flow tests: flows and models of drawn sizes, one-hot data, enumeration
(``all_tokens`` and ``enumerable_sizes`` are the testing kit's)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from mini_flows import backend as B
from mini_flows.discrete import DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, make_network
from mini_flows.testing.normalization import all_tokens
from mini_flows.testing.strategies import enumerable_sizes

HIDDEN = 4
seeds = st.integers(0, 2**32 - 1)
FLOW_CASES = [
    ("autoregressive", "transformer"),
    ("autoregressive", "lstm"),
    ("autoregressive", "made"),
    ("autoregressive", "tabular"),
    ("bipartite", "transformer"),
    ("bipartite", "mlp"),
    ("bipartite", "lstm"),
]


def make_flow(kind: str, network: str, length: int, K: int, scale: bool, direction: str, seed: int):
    """A flow and its random parameters; ``direction`` is the order ("forward"/"reversed") of an
    autoregressive flow, or which positions a bipartite flow keeps ("even"/"odd")."""
    net = make_network(network, length, K, HIDDEN, scale, autoregressive=kind == "autoregressive")
    if kind == "autoregressive":
        flow = DiscreteAutoregressiveFlow(net, order=direction)
    else:
        flow = DiscreteBipartiteFlow(net, keep=direction)
    return flow, flow.init(B.host_rng(seed))


def directions(kind: str):
    return st.sampled_from(["forward", "reversed"] if kind == "autoregressive" else ["even", "odd"])


def one_hot(tokens: np.ndarray, K: int) -> np.ndarray:
    """Host one-hot vectors (..., K) of host integer tokens, to move onto the backend with B.asarray."""
    return np.eye(K)[tokens]


def random_one_hot(rng: np.random.Generator, batch: int, length: int, K: int) -> np.ndarray:
    return one_hot(rng.integers(0, K, size=(batch, length)), K)


__all__ = ["FLOW_CASES", "HIDDEN", "all_tokens", "directions", "enumerable_sizes", "make_flow", "one_hot",
           "random_one_hot", "seeds"]
