"""Shared by the discrete-flow tests: flows and models of drawn sizes, one-hot data, enumeration."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st

from mini_flows import backend as B
from mini_flows.discrete import DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, make_network

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
MAX_CONFIGS = 4096


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


def max_vocab(length: int) -> int:
    """The largest K <= 64 with K^length <= MAX_CONFIGS."""
    return max(k for k in range(2, 65) if k**length <= MAX_CONFIGS)


@st.composite
def enumerable_sizes(draw, max_length: int = 6):
    """(length, K) with K^length <= 4096."""
    length = draw(st.integers(1, max_length))
    return length, draw(st.integers(2, max_vocab(length)))


def all_tokens(length: int, K: int) -> np.ndarray:
    """Every configuration, (K^length, length) integers."""
    return np.array(list(itertools.product(range(K), repeat=length)), dtype=np.int64)
