"""A discrete flow model: a categorical base and a stack of discrete flows (Tran et al. 2019, eq. 4).

    sampling:    x ~ p_base,  y = f_L(... f_2(f_1(x)))                    (each f_l.forward)
    likelihood:  log p(y) = log p_base(f_1^-1(... f_L^-1(y)))            (each f_l.inverse)

The flows form one ``Chain`` [f_L, ..., f_1] (composition order, so f_1 is next to the base).

There is no log-determinant (the chain's is 0): a bijection of a finite set moves probability
mass without changing it. Training minimises the mean negative log-likelihood with the
straight-through gradient through every flow (section 3.3).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.chain import Chain
from mini_flows.checks import check_nonempty_batch, check_number, check_positive_int
from mini_flows.discrete.bases import AutoregressiveCategorical, FactorizedCategorical
from mini_flows.discrete.diagnostics import flow_diagnostics
from mini_flows.discrete.flows import SPREAD, DiscreteAutoregressiveFlow, DiscreteBipartiteFlow
from mini_flows.discrete.networks import AUTOREGRESSIVE_NETWORKS, BIPARTITE_NETWORKS, make_network
from mini_flows.discrete.one_hot import check_vocab_size, one_hot_to_tokens, tokens_to_one_hot
from mini_flows.nn.tree import ChecksParams, Tree, first_leaf

KINDS = ("autoregressive", "bipartite")


class ModelCache(NamedTuple):
    """``forward``'s cache for ``backward``: the flows' ``ChainCache`` and the base's cache."""

    flows: Any
    base: Any


class DiscreteFlowModel(ChecksParams):
    """p(y) for integer sequences y : (batch, D) in [0, K), from a base and flows f_1..f_L.

    ``flows[0]`` is applied first when sampling (next to the base), ``flows[-1]`` last.
    Parameters are explicit: ``params = model.init(rng, dtype)`` is {"base": ..., "flow_0": ...,
    "flow_1": ...}, and every method takes them first, so autograd can differentiate ``forward``
    and ``train.fit`` can train them. ``config``: the ``build_model`` arguments that rebuild the
    model (``DiscreteFlowModel.from_config``), None for a model assembled by hand.

    Example: ``model = build_model("bipartite", 4, 6)``, ``params = model.init(B.host_rng(0))``,
    ``model.log_prob(params, tokens)``.
    """

    def __init__(self, base: Any, flows: Sequence[Any] = (), config: dict[str, Any] | None = None):
        self.base, self.flows, self.config = base, tuple(flows), config
        self.length, self.vocab_size = base.length, base.vocab_size
        for i, flow in enumerate(self.flows):
            if (flow.length, flow.vocab_size) != (self.length, self.vocab_size):
                raise ValueError(
                    f"flow {i} has (length, vocab_size) = ({flow.length}, {flow.vocab_size}) but the base has "
                    f"({self.length}, {self.vocab_size})"
                )
        names = [f"flow_{i}" for i in range(len(self.flows))]
        self.chain = Chain(self.flows[::-1], names[::-1], event_ndim=2)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DiscreteFlowModel":
        """The model ``build_model(**config)`` builds: rebuilds a model from its ``config``."""
        return build_model(**config)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        """Fresh parameters from ``rng`` (a host generator, ``B.host_rng(seed)``) in float ``dtype``."""
        B.float_dtype(dtype)
        params = {"base": self.base.init(rng, dtype)}
        params.update({f"flow_{i}": flow.init(rng, dtype) for i, flow in enumerate(self.flows)})
        return params

    def forward(self, params: Tree, tokens: Array) -> tuple[Array, ModelCache]:
        """tokens (batch, D) integers -> log p(tokens) (batch,) in nats, and a cache for ``backward``."""
        self.check_params(params)
        h = tokens_to_one_hot(tokens, self.length, self.vocab_size, first_leaf(params).dtype)
        x, _, flow_cache = self.chain.inverse(params, h)  # a zero log-det
        log_p, base_cache = self.base.log_prob(params["base"], x)
        return log_p, ModelCache(flow_cache, base_cache)

    def backward(self, params: Tree, cache: ModelCache, dlog_p: Array) -> Tree:
        """dlog_p (batch,) -> gradient tree mirroring ``params``, through the base and every flow."""
        grads = {}
        grads["base"], dh = self.base.backward(params["base"], cache.base, dlog_p)
        flow_grads, _, _ = self.chain.inverse_vjp(params, cache.flows, dh, dlog_p)
        grads.update({f"flow_{i}": flow_grads[f"flow_{i}"] for i in range(len(self.flows))})
        return grads

    def log_prob(self, params: Tree, tokens: Array) -> Array:
        """log p(tokens) : (batch,) in nats for integer tokens (batch, D) in [0, K) (an empty batch
        gives an empty array)."""
        return self.forward(params, tokens)[0]

    def loss_and_grads(self, params: Tree, tokens: Array) -> tuple[float, Tree, dict[str, float]]:
        """(mean negative log-likelihood in nats, its gradient tree, the flows' straight-through
        diagnostics) on integer tokens (batch, D), batch >= 1 (ValueError for an empty batch); the
        loss ``train.fit`` takes, which records the diagnostics every step.

        The diagnostics (``discrete.diagnostics.flow_diagnostics``) are "flow_i/grad",
        "flow_i/margin_median", "flow_i/margin_min" and "flow_i/moved" for every flow i, {} for a
        base alone.
        """
        check_nonempty_batch("tokens", tokens)
        log_p, cache = self.forward(params, tokens)
        batch = log_p.shape[0]
        dlog_p = B.xp().full((batch,), -1.0 / batch, dtype=log_p.dtype)
        grads = self.backward(params, cache, dlog_p)
        flows = dict(zip(self.chain.names, cache.flows.members))
        diagnostics = flow_diagnostics({f"flow_{i}": flows[f"flow_{i}"] for i in range(len(self.flows))}, grads)
        return -float(log_p.mean()), grads, diagnostics

    def sample(self, params: Tree, n: int, seed: int | None = None) -> Array:
        """n integer sequences (n, D): base sample (noise from ``B.rng(seed)``; None: fresh entropy),
        then f_1, ..., f_L forward. The arguments are those of every model's ``sample``
        (``LatentFlowModel``, ``LSTMBaseline``); the sequences all have length D, so it returns the
        tokens alone, where those return (x, lengths)."""
        check_positive_int("n", n)
        self.check_params(params)
        h = self.base.sample(params["base"], n, seed)
        return one_hot_to_tokens(self.chain.forward(params, h)[0])


def build_model(kind: str, vocab_size: int, length: int, num_flows: int = 1, scale: bool = False,
                hidden: int = 32, network: str = "transformer", base_network: str | None = None,
                tau: float = 0.1, spread: float | None = SPREAD, layers: int = 1) -> DiscreteFlowModel:
    """A model in the paper's two set-ups (section 4); ``model.init(rng)`` draws its parameters.

    kind="autoregressive": an ``AutoregressiveCategorical`` base and ``num_flows``
    ``DiscreteAutoregressiveFlow``s whose orders alternate starting with "reversed" next to the
    base; ``network`` in {"transformer", "lstm", "made", "tabular"}.
    kind="bipartite": a ``FactorizedCategorical`` base and ``num_flows`` ``DiscreteBipartiteFlow``s
    whose kept positions alternate "even", "odd", ...; ``network`` in {"transformer", "mlp", "lstm"}.

    ``base_network`` ("transformer" or "lstm", autoregressive kind only) defaults to ``network``
    when that is one of them and to "transformer" otherwise. ``scale`` adds the scale sigma to every
    flow; ``hidden`` is every network's width; ``tau`` is the straight-through temperature (the
    paper fixes 0.1); ``spread`` bounds the spread of the location logits the straight-through
    softmax sees, so that training cannot freeze the flows (``straight_through.shrink_logits``;
    None: the paper's plain estimator); ``layers`` is every flow network's number of hidden layers
    (``make_network``'s ``num_layers``; the base's network keeps one). The model's ``config`` holds
    these arguments as JSON values (NumPy integers and floats become Python ints and floats), so a
    checkpoint can save it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(map(repr, KINDS))}")
    if not isinstance(scale, bool):
        raise ValueError(f"scale must be True or False, got {scale!r}")
    vocab_size = check_vocab_size(vocab_size)
    length = check_positive_int("length", length)
    num_flows = check_positive_int("num_flows", num_flows, minimum=0)
    hidden = check_positive_int("hidden", hidden)
    tau = check_number("tau", tau)
    spread = None if spread is None else check_number("spread", spread)
    layers = check_positive_int("layers", layers, minimum=0)  # 0: MLPNet as a table of logits
    config = dict(kind=kind, vocab_size=vocab_size, length=length, num_flows=num_flows, scale=scale, hidden=hidden,
                  network=network, base_network=base_network, tau=tau, spread=spread, layers=layers)
    autoregressive = kind == "autoregressive"
    choices = AUTOREGRESSIVE_NETWORKS if autoregressive else BIPARTITE_NETWORKS
    if network not in choices:
        raise ValueError(f"unknown {kind} network {network!r}; choose from {', '.join(map(repr, choices))}")
    flows = []
    for i in range(num_flows):
        net = make_network(network, length, vocab_size, hidden, scale, autoregressive, layers)
        if autoregressive:
            flows.append(DiscreteAutoregressiveFlow(net, order="reversed" if i % 2 == 0 else "forward", tau=tau,
                                                    spread=spread))
        else:
            flows.append(DiscreteBipartiteFlow(net, keep="even" if i % 2 == 0 else "odd", tau=tau, spread=spread))
    if autoregressive:
        if base_network is None:
            base_network = network if network in ("transformer", "lstm") else "transformer"
        if base_network not in ("transformer", "lstm"):
            raise ValueError(f"unknown base network {base_network!r}; choose from 'transformer', 'lstm'")
        base = AutoregressiveCategorical(make_network(base_network, length, vocab_size, hidden))
    else:
        if base_network is not None:
            raise ValueError("base_network applies to kind='autoregressive' only (the bipartite base is factorized)")
        base = FactorizedCategorical(length, vocab_size)
    return DiscreteFlowModel(base, flows, config)


def identity_start(model: DiscreteFlowModel, params: Tree, margin: float = 0.3) -> Tree:
    """``params`` with every flow of ``model`` exactly the identity, so the model starts as its
    base (a new tree; the input is left alone).

    Zeroes each flow network's dense head, so that its location logits are the per-position bias
    for every input, and sets that bias to ``margin`` (3 tau at the paper's tau = 0.1) at mu = 0
    and 0 elsewhere. Then mu = 0 everywhere and log q(y) = log q_base(y) bit for bit; the
    straight-through gradient, which still flows at this margin, reaches the head and the bias at
    once (and the rest of the network once the head moves), so training moves a flow only where
    that lowers the loss. (Raising the mu = 0 logit on top of a random head instead leaves a
    random relabelling wherever the head's output varies by more than the margin: a quarter of
    the sites of an 8-unit LSTM flow.) The flows' networks must have a "head" (MLP, LSTM,
    Transformer, tabular); ValueError otherwise.
    """
    params = dict(params)
    for i in range(len(model.flows)):
        net = dict(params[f"flow_{i}"]["network"])
        if "head" not in net:
            raise ValueError(f"flow {i}'s network has no dense head to zero")
        net["head"] = {name: 0 * value for name, value in net["head"].items()}
        zero_first = B.xp().arange(net["bias"].shape[-1]) == 0
        net["bias"] = 0 * net["bias"] + B.asarray(zero_first * margin, net["bias"].dtype)
        params[f"flow_{i}"] = {**params[f"flow_{i}"], "network": net}
    return params


def on_trained_base(model: DiscreteFlowModel, base: Tree, rng: Any, dtype: Any = "float64") -> Tree:
    """Parameters of ``model`` that score exactly as a trained base: ``base`` (the tree of that base,
    ``params["base"]`` of the base trained alone) under flows drawn from ``rng`` and set to the
    identity (``identity_start``). The start of base-first training: the base alone first, then
    base and flows together from here, so that selection on validation (``train.Validation``) can
    only end at or below the trained base's score."""
    return identity_start(model, {**model.init(rng, dtype), "base": base})
