"""The networks that give discrete flows their location and scale logits, from the nn blocks.

Every network maps a sequence h : (batch, D, K) (one-hot in the forward pass; the straight-through
gradient treats it as real-valued) to logits::

    loc, scale = network(h),    loc, scale : (batch, D, K)    (scale is None unless scale=True)

Autoregressive networks (``autoregressive = True``): loc[:, d] and scale[:, d] depend only on
h[:, :d], the strictly earlier positions. ``TransformerNet(causal=True)`` and ``LSTMNet`` read h
shifted right by one position (a zero vector at position 0); ``MADENet`` is masked for it;
``TabularNet``, the paper's Potts network, looks its logits up by the earlier tokens.

Bipartite networks (``autoregressive = False``): ``TransformerNet(causal=False)`` (bidirectional),
``BiLSTMNet`` (an embedding and a bidirectional LSTM, the paper's text network) and ``MLPNet``
(dense layers on the flattened D K inputs) read all of h; the bipartite flow zeroes the
positions it transforms before calling them, and asks for the logits at those positions only::

    (loc, scale), cache = net.forward(params, h, positions)    # loc, scale : (batch, P, K)
    grads, dh = net.backward(params, cache, dloc, dscale)      # dloc, dscale : (batch, P, K)

with ``positions`` a slice of the D positions (all of them when None). The bidirectional
Transformer then runs its last block's queries, feed-forward and head at those positions only.

Every network adds a learned per-position bias (D, heads K) drawn N(0, 0.1^2) at initialisation, so
a random flow is a real permutation even where the network's output does not vary (position 0 of
an autoregressive flow, an MLP whose inputs are all masked): with zero biases every argmax there
would be a tie broken to mu = 0, sigma = 1, the identity. Small, so that elsewhere the network's
own output, which depends on the context, decides the argmax.

Protocol (that of the nn blocks, with two outputs)::

    params = net.init(rng, dtype)
    (loc, scale), cache = net.forward(params, h)
    grads, dh = net.backward(params, cache, dloc, dscale)    # dscale None when scale=False

Incremental protocol, for the sequential forward (sampling) of an autoregressive flow. ``LSTMNet``
and ``TransformerNet(causal=True)`` also give the logits one position at a time, each step
reusing the work of the earlier ones (the LSTM state; the Transformer's keys and values)::

    state = net.start(params, batch)
    for d in range(D):
        (loc_d, scale_d), state = net.step(params, state, h_prev, d)

with h_prev : (batch, K) the input at position d - 1 (zeros at d = 0, the shifted-in vector) and
loc_d, scale_d : (batch, K) (scale_d None unless scale=True) equal to ``net.forward(params, h)[0]``
at position d, to round-off. Steps run in order d = 0, 1, ..., D - 1; they are for inference only:
no cache for a backward pass, no input checks (the caller checks once), and the state may be
updated in place. Networks without ``step`` (``MADENet``, ``TabularNet``) are called on the
whole zero-padded prefix once per position instead.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_positive_int, check_shape
from mini_flows.discrete.one_hot import check_vocab_size
from mini_flows.nn import init
from mini_flows.nn.layers import Dense, affine
from mini_flows.nn.lstm import LSTM, BiLSTM
from mini_flows.nn.made import MADE
from mini_flows.nn.mlp import MLP
from mini_flows.nn.transformer import TransformerEncoder
from mini_flows.nn.tree import Tree

AUTOREGRESSIVE_NETWORKS = ("transformer", "lstm", "made", "tabular")
TABLE_ROWS = 4096  # the default cap on a tabular network's rows per position, K^context
BIPARTITE_NETWORKS = ("transformer", "mlp", "lstm")


def shift_right(h: Array) -> Array:
    """(batch, D, K) -> (batch, D, K) with out[:, 0] = 0 and out[:, d] = h[:, d - 1]."""
    xp = B.xp()
    zero = xp.zeros((h.shape[0], 1, h.shape[2]), dtype=B.value(h).dtype)
    return xp.concatenate([zero, h[:, :-1]], axis=1)


def shift_right_backward(dout: Array) -> Array:
    """The transpose of ``shift_right``: dh[:, d] = dout[:, d + 1], dh[:, D - 1] = 0."""
    xp = B.xp()
    return xp.concatenate([dout[:, 1:], xp.zeros_like(dout[:, :1])], axis=1)


def at_positions(a: Array, positions: slice | None) -> Array:
    """(..., D, n) -> (..., P, n): ``a`` at the positions asked for (all of it when None)."""
    return a if positions is None else a[..., positions, :]


def scatter_positions(d: Array, length: int, positions: slice | None) -> Array:
    """The transpose of ``at_positions``: (..., P, n) gradients -> (..., D, n), zero elsewhere."""
    if positions is None:
        return d
    full = B.xp().zeros((*d.shape[:-2], length, d.shape[-1]), dtype=d.dtype)
    full[..., positions, :] = d
    return full


class _Network:
    """Shared by every network: sizes, checks, the per-position bias and the split into heads."""

    autoregressive: bool

    def __init__(self, length: int, vocab_size: int, hidden: int, scale: bool):
        check_positive_int("length", length)
        check_vocab_size(vocab_size)
        check_positive_int("hidden", hidden)
        self.length, self.vocab_size, self.hidden, self.scale = length, vocab_size, hidden, bool(scale)
        self.n_out = vocab_size * (2 if scale else 1)

    def _init_bias(self, rng: Any, dtype: Any) -> Array:
        return init.normal(rng, (self.length, self.n_out), 0.1, dtype)

    def _check(self, params: Tree, h: Array) -> None:
        check_float("h", h, like=params["bias"])
        check_shape("h", h, (None, self.length, self.vocab_size))

    def _heads(self, raw: Array, bias: Array) -> tuple[Array, Array | None]:
        """raw (batch, P, heads K) + bias (P, heads K) -> (loc, scale or None)."""
        out = raw + bias
        K = self.vocab_size
        return (out[..., :K], out[..., K:]) if self.scale else (out, None)

    def _heads_backward(self, dloc: Array, dscale: Array | None,
                        positions: slice | None = None) -> tuple[Array, Array]:
        """(dloc, dscale) at ``positions`` -> (draw, dbias) with dbias : (D, heads K), 0 elsewhere."""
        draw = B.xp().concatenate([dloc, dscale], axis=-1) if self.scale else dloc
        return draw, scatter_positions(draw.sum(axis=0), self.length, positions)


class TransformerNet(_Network):
    """Dense embedding K -> hidden, a Transformer encoder, and a dense head hidden -> heads K:

        loc, scale = W_o Encoder(W_e shift(h) + b_e) + b_o + bias    (causal=True, autoregressive)
        loc, scale = W_o Encoder(W_e h + b_e) + b_o + bias           (causal=False, bidirectional)

    With causal=True position d attends to the shifted positions <= d, i.e. to h[:, :d].
    The feed-forward layers use ReLU by default, as the paper's Transformers do: they are
    tensor2tensor's (Tran et al. 2019, section 4.4, give a "filter size", its name for d_ff), whose
    feed-forward layer is Vaswani et al.'s eq. 2, max(0, x W_1 + b_1) W_2 + b_2. It is also 15 times
    cheaper than GELU's exp in float64 on a CPU.
    Parameters: "embed" Dense, "encoder" TransformerEncoder, "head" Dense, "bias" (D, heads K).
    """

    def __init__(self, length: int, vocab_size: int, hidden: int = 32, scale: bool = False, causal: bool = True,
                 num_layers: int = 1, num_heads: int = 2, activation: str = "relu"):
        super().__init__(length, vocab_size, hidden, scale)
        self.causal = self.autoregressive = bool(causal)
        self.embed = Dense(vocab_size, hidden)
        self.encoder = TransformerEncoder(hidden, num_heads, 4 * hidden, num_layers, max_len=length,
                                          activation=activation)
        self.head = Dense(hidden, self.n_out)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"embed": self.embed.init(rng, dtype), "encoder": self.encoder.init(rng, dtype),
                "head": self.head.init(rng, dtype), "bias": self._init_bias(rng, dtype)}

    def forward(self, params: Tree, h: Array,
                positions: slice | None = None) -> tuple[tuple[Array, Array | None], Any]:
        """h : (batch, D, K) -> (loc, scale) : (batch, P, K) at ``positions`` (all D when None;
        bidirectional only)."""
        self._check(params, h)
        inp = shift_right(h) if self.causal else h
        e = affine(params["embed"], inp)
        t, t_cache = self.encoder.forward(params["encoder"], e, self.causal, None, positions, check=False)
        raw = affine(params["head"], t)
        return self._heads(raw, at_positions(params["bias"], positions)), (inp, t_cache, t, positions)

    def start(self, params: Tree, batch: int) -> list[Tree]:
        """The state before position 0: empty key/value caches, one per encoder block. Causal only."""
        if not self.causal:
            raise ValueError("incremental steps need a causal TransformerNet; a bidirectional one reads the whole sequence")
        return self.encoder.start(params["encoder"], batch)

    def step(self, params: Tree, state: list[Tree], h_prev: Array, d: int
             ) -> tuple[tuple[Array, Array | None], list[Tree]]:
        """Logits at position d from h_prev : (batch, K), the input at d - 1 (zeros at d = 0):
        ((loc_d, scale_d) : (batch, K) each, state with position d's keys and values cached)."""
        t, state = self.encoder.step(params["encoder"], state, affine(params["embed"], h_prev), d)
        return self._heads(affine(params["head"], t), params["bias"][d]), state

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: Array | None = None) -> tuple[Tree, Array]:
        inp, t_cache, t, positions = cache
        draw, dbias = self._heads_backward(dloc, dscale, positions)
        g_head, dt = self.head.backward(params["head"], t, draw)
        g_encoder, de = self.encoder.backward(params["encoder"], t_cache, dt)
        g_embed, dinp = self.embed.backward(params["embed"], inp, de)
        dh = shift_right_backward(dinp) if self.causal else dinp
        return {"embed": g_embed, "encoder": g_encoder, "head": g_head, "bias": dbias}, dh


class LSTMNet(_Network):
    """An LSTM over the shifted sequence and a dense head (autoregressive):

        s_d = LSTM(h_0, ..., h_{d-1}),    loc_d, scale_d = W_o s_d + b_o + bias_d.

    Parameters: "lstm" LSTM, "head" Dense, "bias" (D, heads K).
    """

    autoregressive = True

    def __init__(self, length: int, vocab_size: int, hidden: int = 32, scale: bool = False, num_layers: int = 1):
        super().__init__(length, vocab_size, hidden, scale)
        self.lstm = LSTM(vocab_size, hidden, num_layers)
        self.head = Dense(hidden, self.n_out)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"lstm": self.lstm.init(rng, dtype), "head": self.head.init(rng, dtype),
                "bias": self._init_bias(rng, dtype)}

    def forward(self, params: Tree, h: Array) -> tuple[tuple[Array, Array | None], Any]:
        self._check(params, h)
        (s, _), s_cache = self.lstm.forward(params["lstm"], shift_right(h))
        raw, o_cache = self.head.forward(params["head"], s)
        return self._heads(raw, params["bias"]), (s_cache, o_cache)

    def start(self, params: Tree, batch: int) -> tuple[Array, Array]:
        """The state before position 0: the LSTM's zero state (h, c), each (num_layers, batch, hidden)."""
        zeros = B.xp().zeros((self.lstm.num_layers, batch, self.hidden), B.value(params["bias"]).dtype)
        return zeros, zeros

    def step(self, params: Tree, state: tuple[Array, Array], h_prev: Array, d: int
             ) -> tuple[tuple[Array, Array | None], tuple[Array, Array]]:
        """Logits at position d from h_prev : (batch, K), the input at d - 1 (zeros at d = 0):
        one ``LSTM.step`` on h_prev gives s_d. Returns ((loc_d, scale_d) : (batch, K) each, state)."""
        state = self.lstm.step(params["lstm"], h_prev, state)
        return self._heads(affine(params["head"], state[0][-1]), params["bias"][d]), state

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: Array | None = None) -> tuple[Tree, Array]:
        s_cache, o_cache = cache
        draw, dbias = self._heads_backward(dloc, dscale)
        g_head, ds = self.head.backward(params["head"], o_cache, draw)
        g_lstm, dinp, _ = self.lstm.backward(params["lstm"], s_cache, ds)
        return {"lstm": g_lstm, "head": g_head, "bias": dbias}, shift_right_backward(dinp)


class BiLSTMNet(_Network):
    """The paper's flow network for text (Tran et al. 2019, section 4.4: an embedding and an LSTM
    over the masked sequence, per flow), bidirectional (bipartite):

        e_d = W_e h_d + b_e,   s = BiLSTM(e_0, ..., e_{D-1}),   loc_d, scale_d = W_o s_d + b_o + bias_d,

    s_d = [forward state after e_0..e_d, backward state after e_{D-1}..e_d] : (2 hidden,). The
    bipartite flow zeroes the positions it transforms, so the LSTM reads the kept positions' tokens
    only (a transformed position's e_d is b_e, the same for every input). Both directions run over
    all D positions; the head runs at ``positions`` only.
    Parameters: "embed" Dense K -> hidden, "lstm" BiLSTM, "head" Dense 2 hidden -> heads K,
    "bias" (D, heads K).
    """

    autoregressive = False

    def __init__(self, length: int, vocab_size: int, hidden: int = 32, scale: bool = False, num_layers: int = 1):
        super().__init__(length, vocab_size, hidden, scale)
        self.embed = Dense(vocab_size, hidden)
        self.lstm = BiLSTM(hidden, hidden, num_layers)
        self.head = Dense(2 * hidden, self.n_out)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"embed": self.embed.init(rng, dtype), "lstm": self.lstm.init(rng, dtype),
                "head": self.head.init(rng, dtype), "bias": self._init_bias(rng, dtype)}

    def forward(self, params: Tree, h: Array,
                positions: slice | None = None) -> tuple[tuple[Array, Array | None], Any]:
        """h : (batch, D, K) -> (loc, scale) : (batch, P, K) at ``positions`` (all D when None)."""
        self._check(params, h)
        s, s_cache = self.lstm.forward(params["lstm"], affine(params["embed"], h))
        s = at_positions(s, positions)
        raw = affine(params["head"], s)
        return self._heads(raw, at_positions(params["bias"], positions)), (h, s_cache, s, positions)

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: Array | None = None) -> tuple[Tree, Array]:
        h, s_cache, s, positions = cache
        draw, dbias = self._heads_backward(dloc, dscale, positions)
        g_head, ds = self.head.backward(params["head"], s, draw)
        g_lstm, de = self.lstm.backward(params["lstm"], s_cache, scatter_positions(ds, self.length, positions))
        g_embed, dh = self.embed.backward(params["embed"], h, de)
        return {"embed": g_embed, "lstm": g_lstm, "head": g_head, "bias": dbias}, dh


class MADENet(_Network):
    """A masked MLP (Germain et al. 2015) on the one-hot inputs (autoregressive, no shift needed):

        loc_d, scale_d = MADE(h)_d + bias_d,    MADE(h)_d a function of h[:, :d] only.

    No incremental ``step``. A MADE carries no state from one position to the next the way an
    LSTM (its recurrent state) or a causal Transformer (its keys and values) does: its hidden units
    are indexed by degree, not by position, and filling in h_{d-1} completes the units of degree d
    in every layer, a scattered few columns of each masked weight matrix (about hidden / (D - 1),
    none for some d when D > hidden). Computing just those per position would add up to one pass,
    but needs per-degree gathers of the masked weights, which ``nn.made.MADE`` does not expose. So
    the autoregressive flow calls ``forward`` on the zero-padded prefix once per position (D
    passes), as for any network without ``step``.

    Parameters: "made" MADE (in_features = K), "bias" (D, heads K).
    """

    autoregressive = True

    def __init__(self, length: int, vocab_size: int, hidden: int = 32, scale: bool = False, num_layers: int = 1):
        super().__init__(length, vocab_size, hidden, scale)
        check_positive_int("num_layers", num_layers)
        self.made = MADE(length, (hidden,) * num_layers, self.n_out, in_features=vocab_size)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"made": self.made.init(rng, dtype), "bias": self._init_bias(rng, dtype)}

    def forward(self, params: Tree, h: Array) -> tuple[tuple[Array, Array | None], Any]:
        self._check(params, h)
        raw, cache = self.made.forward(params["made"], h)
        return self._heads(raw, params["bias"]), cache

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: Array | None = None) -> tuple[Tree, Array]:
        draw, dbias = self._heads_backward(dloc, dscale)
        g_made, dh, _ = self.made.backward(params["made"], cache, draw)
        return {"made": g_made, "bias": dbias}, dh


class MLPNet(_Network):
    """Dense layers on the flattened sequence (bipartite: every output sees every input):

        a_0 = flatten(h) (batch, D K),   a_l = relu(W_l a_{l-1} + b_l),  l = 1..num_layers,
        loc, scale = reshape(W_o a_L + b_o, (batch, D, heads K)) + bias.

    With ``num_layers=0`` the map is linear in the one-hot inputs: a table of logits for every
    value of every input position, summed (the paper's "embedding layer which returns a trainable
    location parameter for every unique combination of inputs", section 4.3, when one position
    is kept).
    Parameters: "hidden_0", ... Dense, "head" Dense (an ``nn.MLP`` with those layer names),
    "bias" (D, heads K).
    """

    autoregressive = False

    def __init__(self, length: int, vocab_size: int, hidden: int = 32, scale: bool = False, num_layers: int = 1):
        super().__init__(length, vocab_size, hidden, scale)
        check_positive_int("num_layers", num_layers, minimum=0)
        self.mlp = MLP(length * vocab_size, [hidden] * num_layers, length * self.n_out, "relu",
                       names=[f"hidden_{i}" for i in range(num_layers)] + ["head"])

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {**self.mlp.init(rng, dtype), "bias": self._init_bias(rng, dtype)}

    def forward(self, params: Tree, h: Array,
                positions: slice | None = None) -> tuple[tuple[Array, Array | None], Any]:
        """h : (batch, D, K) -> (loc, scale) : (batch, P, K) at ``positions`` (all D when None)."""
        self._check(params, h)
        raw, cache = self.mlp.forward(params, h.reshape(h.shape[0], self.length * self.vocab_size))
        raw = at_positions(raw.reshape(h.shape[0], self.length, self.n_out), positions)
        return self._heads(raw, at_positions(params["bias"], positions)), (cache, positions)

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: Array | None = None) -> tuple[Tree, Array]:
        cache, positions = cache
        draw, dbias = self._heads_backward(dloc, dscale, positions)
        draw = scatter_positions(draw, self.length, positions)
        grads, da = self.mlp.backward(params, cache, draw.reshape(draw.shape[0], self.length * self.n_out))
        return {**grads, "bias": dbias}, da.reshape(draw.shape[0], self.length, self.vocab_size)


class TabularNet(_Network):
    """The paper's flow network for its Potts models, "an embedding layer which returns a trainable
    location parameter for every unique combination of inputs" (Tran et al. 2019, section 4.3),
    autoregressive: a table of logits per position, looked up by the latest ``context`` tokens,

        loc_d, scale_d = T_d[x_{d-c}, ..., x_{d-1}] + bias_d,    x_j = argmax h_j,  c = context,

    fewer at d < c. ``context`` defaults to all D - 1 earlier positions while that table has at
    most ``TABLE_ROWS`` rows (K^context), and else to the most that fit. The lookup is piecewise
    constant in h, so, as an embedding's, its gradient reaches the table and not h (dh = 0).
    Parameters: "head" {"table": (D, K^context, heads K)} drawn N(0, 1), "bias" (D, heads K).
    ``hidden`` is not used.
    """

    autoregressive = True

    def __init__(self, length: int, vocab_size: int, hidden: int = 32, scale: bool = False,
                 context: int | None = None):
        super().__init__(length, vocab_size, hidden, scale)
        if context is None:
            context = max(c for c in range(length) if vocab_size**c <= TABLE_ROWS)
        check_positive_int("context", context, minimum=0)
        if context > length - 1:
            raise ValueError(f"context must be at most length - 1 = {length - 1}, got {context}")
        self.context, self.rows = context, vocab_size**context

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        table = init.normal(rng, (self.length, self.rows, self.n_out), 1.0, dtype)
        return {"head": {"table": table}, "bias": self._init_bias(rng, dtype)}

    def rows_of(self, h: Array) -> Array:
        """The table row of every position: (batch, D) integers, row_d = the tokens x_{d-c..d-1}
        read as a base-K number (row_0 = 0)."""
        xp = B.xp()
        tokens = xp.argmax(B.value(h), axis=-1)
        rows = [xp.zeros(tokens.shape[:1], dtype=tokens.dtype)]
        for d in range(1, self.length):
            rows.append((rows[-1] * self.vocab_size + tokens[:, d - 1]) % self.rows)
        return xp.stack(rows, axis=1)

    def forward(self, params: Tree, h: Array) -> tuple[tuple[Array, Array | None], Any]:
        self._check(params, h)
        rows = self.rows_of(h)
        raw = params["head"]["table"][B.xp().arange(self.length)[None, :], rows]
        return self._heads(raw, params["bias"]), (rows, h.shape)

    def backward(self, params: Tree, cache: Any, dloc: Array, dscale: Array | None = None) -> tuple[Tree, Array]:
        rows, h_shape = cache
        xp = B.xp()
        draw, dbias = self._heads_backward(dloc, dscale)
        dtable = xp.zeros_like(params["head"]["table"])
        positions = xp.broadcast_to(xp.arange(self.length)[None, :], rows.shape)
        xp.add.at(dtable, (positions, rows), draw)
        return {"head": {"table": dtable}, "bias": dbias}, xp.zeros(h_shape, dtype=draw.dtype)


def make_network(name: str, length: int, vocab_size: int, hidden: int = 32, scale: bool = False,
                 autoregressive: bool = True, num_layers: int = 1) -> _Network:
    """A network by name: autoregressive "transformer" (causal), "lstm", "made" or "tabular";
    bipartite "transformer" (bidirectional), "mlp" or "lstm" (``BiLSTMNet``). ``num_layers``: its hidden
    layers (Transformer blocks, LSTM layers); the tabular network has none to vary and takes 1 only."""
    choices = AUTOREGRESSIVE_NETWORKS if autoregressive else BIPARTITE_NETWORKS
    if name not in choices:
        kind = "autoregressive" if autoregressive else "bipartite"
        raise ValueError(f"unknown {kind} network {name!r}; choose from {', '.join(map(repr, choices))}")
    if name == "transformer":
        return TransformerNet(length, vocab_size, hidden, scale, causal=autoregressive, num_layers=num_layers)
    if name == "tabular":
        if num_layers != 1:
            raise ValueError(f"the tabular network has no hidden layers: num_layers must be 1, got {num_layers!r}")
        return TabularNet(length, vocab_size, hidden, scale)
    networks = {"lstm": LSTMNet if autoregressive else BiLSTMNet, "made": MADENet, "mlp": MLPNet}
    return networks[name](length, vocab_size, hidden, scale, num_layers)
