"""Addition (Tran et al. 2019, section 4.2): an autoregressive base reads the sum in the wrong order.

Two D-digit numbers a and b (digits uniform on [0, 10), most significant first) and their sum
y = (a + b) mod 10^D (``data.toy.addition_samples``). The model is p(y | a, b). Carries run right
to left, so a left-to-right base cannot know the carry into digit d before it has read the digits
after d; a flow whose network reads the sequence right to left can compute it, and relabel y so
that the base has nothing left to guess.

Conditioning. The discrete flow classes hand their networks only the sequence, so the input
digits reach every network as context features at their own position: the pair (a_d, b_d) as one
token of K^2 = 100 values, c_d = one_hot(K a_d + b_d), is appended to position d's input. The
networks here are those of ``mini_flows.discrete.networks`` with that extra input:

    ContextLSTMNet     autoregressive: an LSTM over [h_{t-1}, c_t] in the network's reading order
                       (the AR base reads left to right, the first flow right to left), so it sees
                       the input digits up to and including the position it predicts;
    ContextMLPNet      bipartite: an MLP over [m . h, c], every input digit visible;
    ContextFactorized  the factorized base p(y_d | a_d, b_d) = Cat(softmax(W c_d + theta_d)).

``condition(model, a, b)`` sets the context of every network of a model before each call. This
stands in for the paper's LSTM encoders, whose final states start the base's LSTM: here each
network's own LSTM encodes the inputs in its reading order. Widths are 64 units, not 256. The
flows start from their random initialisation (a flow started at the identity stays there on this
task: the straight-through gradient never tips it).
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.data import addition_samples
from mini_flows.discrete import (
    AutoregressiveCategorical,
    DiscreteAutoregressiveFlow,
    DiscreteBipartiteFlow,
    DiscreteFlowModel,
)
from mini_flows.discrete.diagnostics import diagnostics_report
from mini_flows.discrete.flows import SPREAD, with_progress
from mini_flows.discrete.networks import at_positions, scatter_positions, shift_right, shift_right_backward
from mini_flows.discrete.one_hot import check_one_hot
from mini_flows.experiments.figures import save_figure, table_bars
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.nn import init
from mini_flows.nn.layers import Dense
from mini_flows.nn.losses import log_softmax, one_hot
from mini_flows.nn.lstm import LSTM
from mini_flows.nn.mlp import MLP
from mini_flows.nn.tree import Tree, first_leaf
from mini_flows.optim import Adam
from mini_flows.train import fit, linear_decay

DIGITS, BASE, LR = 10, 10, 5e-3
SETUPS = {  # label -> (kind, flows, the paper's NLL in nats or None)
    "factorized base (0 flows)": ("bipartite", 0, None),
    "AR base": ("autoregressive", 0, 4.0),
    "AR flow (1 flow)": ("autoregressive", 1, 0.2),
    "bipartite, 1 flow": ("bipartite", 1, 4.0),
    "bipartite, 2 flows": ("bipartite", 2, 3.17),
    "bipartite, 4 flows": ("bipartite", 4, 2.58),
}


class _Context:
    """Holds the per-position context c : (batch, D, C) that ``condition`` sets."""

    context: Array | None = None

    def _sizes(self, length: int, vocab_size: int, context_size: int) -> None:
        check_positive_int("length", length)
        check_positive_int("vocab_size", vocab_size, minimum=2)
        check_positive_int("context_size", context_size)
        self.length, self.vocab_size = length, vocab_size

    def _context(self, dtype: Any, batch: int, reverse: bool = False) -> Array:
        if self.context is None or self.context.shape[0] != batch:
            raise ValueError("no context for this batch: call condition(model, a, b) before using the model")
        c = self.context[:, ::-1] if reverse else self.context
        return c.astype(dtype)


class ContextLSTMNet(_Context):
    """loc_t = W_o s_t + b_o + bias_t with s_t = LSTM([h_{t-1}, c_t]) (h_{-1} = 0): autoregressive.

    ``reverse`` flips the context, for a flow in reversed order (which flips h before calling).
    Inputs: h : (batch, D, K). Returns (loc, None), loc : (batch, D, K).
    Parameters: "lstm" LSTM (K + C -> hidden), "head" Dense, "bias" (D, K).
    """

    autoregressive, scale = True, False

    def __init__(self, length: int, vocab_size: int, context_size: int, hidden: int = 64, reverse: bool = False):
        self._sizes(length, vocab_size, context_size)
        self.reverse = reverse
        self.lstm = LSTM(vocab_size + context_size, hidden)
        self.head = Dense(hidden, vocab_size)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"lstm": self.lstm.init(rng, dtype), "head": self.head.init(rng, dtype),
                "bias": init.normal(rng, (self.length, self.vocab_size), 0.1, dtype)}

    def forward(self, params: Tree, h: Array) -> tuple[tuple[Array, None], Any]:
        c = self._context(B.value(h).dtype, h.shape[0], self.reverse)
        (s, _), s_cache = self.lstm.forward(params["lstm"], B.xp().concatenate([shift_right(h), c], axis=-1))
        raw, o_cache = self.head.forward(params["head"], s)
        return (raw + params["bias"], None), (s_cache, o_cache)

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: None = None) -> tuple[Tree, Array]:
        s_cache, o_cache = cache
        g_head, ds = self.head.backward(params["head"], o_cache, dloc)
        g_lstm, dinp, _ = self.lstm.backward(params["lstm"], s_cache, ds)
        dh = shift_right_backward(dinp[..., :self.vocab_size])
        return {"lstm": g_lstm, "head": g_head, "bias": dloc.sum(axis=0)}, dh


class ContextMLPNet(_Context):
    """loc = reshape(MLP([flatten(h), flatten(c)]), (batch, D, K)) + bias: bipartite (every
    output sees every input; the flow masks h).

    Parameters: "mlp" MLP (D (K + C) -> hidden -> D K, relu), "bias" (D, K).
    """

    autoregressive, scale = False, False

    def __init__(self, length: int, vocab_size: int, context_size: int, hidden: int = 64):
        self._sizes(length, vocab_size, context_size)
        self.mlp = MLP(length * (vocab_size + context_size), (hidden,), length * vocab_size)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"mlp": self.mlp.init(rng, dtype),
                "bias": init.normal(rng, (self.length, self.vocab_size), 0.1, dtype)}

    def forward(self, params: Tree, h: Array, positions: slice | None = None) -> tuple[tuple[Array, None], Any]:
        """loc : (batch, P, K) at ``positions`` (all D when None), as ``MLPNet``'s."""
        batch = h.shape[0]
        c = self._context(B.value(h).dtype, batch)
        inputs = B.xp().concatenate([h.reshape(batch, -1), c.reshape(batch, -1)], axis=-1)
        out, cache = self.mlp.forward(params["mlp"], inputs)
        out = at_positions(out.reshape(batch, self.length, self.vocab_size) + params["bias"], positions)
        return (out, None), (cache, positions)

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: None = None) -> tuple[Tree, Array]:
        cache, positions = cache
        batch = dloc.shape[0]
        dloc = scatter_positions(dloc, self.length, positions)
        g_mlp, dinp = self.mlp.backward(params["mlp"], cache, dloc.reshape(batch, -1))
        dh = dinp[:, :self.length * self.vocab_size].reshape(batch, self.length, self.vocab_size)
        return {"mlp": g_mlp, "bias": dloc.sum(axis=0)}, dh


class ContextFactorized(_Context):
    """p(x | c) = prod_d Cat(x_d | softmax(W c_d + b + theta_d)): a factorized base given each
    position's own context, on one-hot x : (batch, D, K) (the base protocol of ``discrete.bases``).

    Parameters: "dense" Dense (C -> K), "logits" theta : (D, K).
    """

    def __init__(self, length: int, vocab_size: int, context_size: int):
        self._sizes(length, vocab_size, context_size)
        self.dense = Dense(context_size, vocab_size)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"dense": self.dense.init(rng, dtype),
                "logits": init.normal(rng, (self.length, self.vocab_size), 0.1, dtype)}

    def log_prob(self, params: Tree, x: Array) -> tuple[Array, Any]:
        """x : (batch, D, K) one-hot -> log p(x | c) : (batch,)."""
        check_one_hot("x", x, self.length, self.vocab_size, like=params["logits"])
        z, d_cache = self.dense.forward(params["dense"], self._context(B.value(x).dtype, x.shape[0]))
        logp = log_softmax(z + params["logits"])
        return (x * logp).sum(axis=(1, 2)), (logp, x, d_cache)

    def backward(self, params: Tree, cache: Any, dlog_p: Array) -> tuple[Tree, Array]:
        """dlogits = dlog_p (x - softmax sum_k x), dx = dlog_p log_softmax."""
        logp, x, d_cache = cache
        dlogits = dlog_p[:, None, None] * (x - B.xp().exp(logp) * x.sum(axis=-1, keepdims=True))
        g_dense, _ = self.dense.backward(params["dense"], d_cache, dlogits)
        return {"dense": g_dense, "logits": dlogits.sum(axis=0)}, dlog_p[:, None, None] * logp


def build(kind: str, num_flows: int, length: int = DIGITS, vocab_size: int = BASE, hidden: int = 64,
          spread: float | None = SPREAD) -> DiscreteFlowModel:
    """p(y | a, b): kind "autoregressive" (ContextLSTMNet base and flows, the first flow reversed)
    or "bipartite" (ContextFactorized base, ContextMLPNet flows keeping even, odd, ... positions);
    ``spread``: the flows' (``build_model``'s)."""
    C = vocab_size * vocab_size
    flows: list[Any] = []
    if kind == "autoregressive":
        base: Any = AutoregressiveCategorical(ContextLSTMNet(length, vocab_size, C, hidden))
        for i in range(num_flows):
            order = "reversed" if i % 2 == 0 else "forward"
            net = ContextLSTMNet(length, vocab_size, C, hidden, reverse=order == "reversed")
            flows.append(DiscreteAutoregressiveFlow(net, order=order, spread=spread))
    elif kind == "bipartite":
        base = ContextFactorized(length, vocab_size, C)
        flows = [DiscreteBipartiteFlow(ContextMLPNet(length, vocab_size, C, hidden),
                                       keep="even" if i % 2 == 0 else "odd", spread=spread) for i in range(num_flows)]
    else:
        raise ValueError(f"kind must be 'autoregressive' or 'bipartite', got {kind!r}")
    return DiscreteFlowModel(base, flows)


def condition(model: DiscreteFlowModel, a: Array, b: Array, dtype: Any = "float64") -> None:
    """Give every network of ``model`` the context c_d = one_hot(K a_d + b_d) : (batch, D, K^2) in
    ``dtype``, the pair of input digits at position d as one token."""
    K = model.vocab_size
    c = one_hot(K * B.asarray(a) + B.asarray(b), K * K, dtype)
    parts = [model.base, getattr(model.base, "network", None), *(flow.network for flow in model.flows)]
    for part in parts:
        if isinstance(part, _Context):
            part.context = c


def heldout_nll(model: DiscreteFlowModel, params: Tree, a: Array, b: Array, y: Array, chunk: int = 2000) -> float:
    """-mean log p(y | a, b) over the rows, ``chunk`` at a time."""
    total = 0.0
    for start in range(0, y.shape[0], chunk):
        rows = slice(start, start + chunk)
        condition(model, a[rows], b[rows], first_leaf(params).dtype)
        total += float(B.xp().sum(model.log_prob(params, y[rows])))
    return -total / y.shape[0]


def run(settings: Settings) -> Report:
    """Section 4.2's models for D = 10, and the factorized base alone: test NLL in nats per sum."""
    steps = settings.pick_steps(1500, 5)
    hidden, batch = (8, 16) if settings.quick else (64, 128)
    a, b, y = (B.asarray(v) for v in addition_samples(steps * batch, settings.seed, DIGITS, BASE))
    test = [B.asarray(v) for v in addition_samples(500 if settings.quick else 5000, settings.seed + 1, DIGITS, BASE)]
    rows, results, diagnostics = [], {}, {}
    settings.clock.plan(len(SETUPS) * steps)
    for label, (kind, flows, paper) in SETUPS.items():
        model = build(kind, flows, hidden=hidden, spread=settings.spread)

        def batch_at(step: int, model: DiscreteFlowModel = model) -> Array:
            part = slice(step * batch, (step + 1) * batch)
            condition(model, a[part], b[part])
            return y[part]

        loss, batches = with_progress(model, batch_at, steps)
        params, history = fit(loss, model.init(B.host_rng(settings.seed)), batches, steps,
                              Adam(lr=LR, clip_norm=5.0), linear_decay(LR, steps),
                              settings.progress(label, steps, unit="nats/seq"))
        if flows:
            diagnostics[label] = diagnostics_report(history)
        results[label] = heldout_nll(model, params, *test)
        rows.append([label, cell(results[label], paper), cell(results[label] / DIGITS)])
    table = Table(f"Tran et al. 2019, section 4.2: addition of two {DIGITS}-digit numbers, test NLL of the sum",
                  ["NLL (nats)", "per digit"], rows)
    notes = [f"{steps} Adam steps of {batch} fresh problems per model, {test[0].shape[0]} test problems; networks of "
             f"{hidden} units (paper: 256); a perfect model scores 0",
             "the input digits enter each network at their own position (not through encoder final states): the "
             "left-to-right base cannot see the carries coming from the right, the reversed flow can"]
    report = Report(table, notes, results={"nll": results, "steps": steps, "diagnostics": diagnostics})
    save_figure(settings, "addition.png", table_bars(table, ["NLL (nats)"], "test NLL of the sum (nats)"), report)
    return report
