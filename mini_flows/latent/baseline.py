"""The LSTM language-model baseline of section 6, with the latent model's length conditioning.

The paper's "gold standard": a discrete autoregressive model (Press and Wolf 2017) of the same
size as the flow model's components, conditioned on the length T the way the flow model is
(supplement C), so both define p(x) = p(T) p(x | T) with the same p(T):

    p(x | T) = prod_{t < T} p(x_t | x_<t, T)
    h_t      = LSTM([s_{t-1} E, enc_t])           s_{-1} = e_K, the start symbol <s> (a row of E of its own)
    l_t      = (h_t W + c) E_{:K}^T + bias        tied (the emission's form), or
    l_t      = h_t W + bias                        untied (a Dense layer)

where enc_t is the two one-hot vectors of supplement C (distance t from the start and T - 1 - t
from the end), so the model knows at every step how many tokens remain. Two outputs (Table 1 and
Table 3 of the paper):

    categorical : x_t in [0, K),     s_t = one_hot(x_t) (E[x_t]),  p(x_t | x_<t, T) = softmax(l_t)[x_t]
    bernoulli   : x_t in {0, 1}^K,   s_t = [x_t, 0] (a projection of the frame; <s> differs from silence),
                  log p(x_t | x_<t, T) = sum_k x_tk l_tk - softplus(l_tk)     (independent keys)

The Bernoulli term is computed as a two-way softmax over (0, l_tk) per key, since
log softmax(0, l)[1] = l - softplus(l) and log softmax(0, l)[0] = -softplus(l): the shifted
log-softmax keeps it stable for any l. Training minimises the NLL per real step; supplement D's
dropout acts on the LSTM's outputs. Generation is sequential: each step is drawn before the next
can run (section 6.3, Figure 7).

Padding: steps t >= lengths[b] may hold anything (any integer; any number, NaN included, for
frames); they never change a score.

Example
-------
>>> model = LSTMBaseline(BaselineConfig(5, max_length=4, embed_size=3, hidden_size=3))
>>> params = model.init(B.host_rng(0))
>>> log_p = model.log_prob(params, B.asarray([[0, 1, 2, 3], [4, 4, 0, 0]]), B.asarray([4, 2]))
>>> tokens, lengths = model.sample(params, 2, seed=1)
>>> rolls = LSTMBaseline(BaselineConfig(88, max_length=4, embed_size=3, hidden_size=3, output="bernoulli"))
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_nonempty_batch, check_positive_int, check_shape, check_tokens
from mini_flows.continuous.length import SequenceContext, check_lengths, sequence_context
from mini_flows.continuous.priors import check_dropout_mask
from mini_flows.latent.config import OUTPUTS, BaselineConfig, ConfiguredModel
from mini_flows.latent.dropout import check_dropout_rate, dropout_mask
from mini_flows.latent.emission import draw
from mini_flows.nn import init, losses
from mini_flows.nn.layers import Dense
from mini_flows.nn.lstm import LSTM
from mini_flows.nn.tree import Tree


class BaselineCache(NamedTuple):
    """``LSTMBaseline.forward``'s cache: the symbols s_{t-1} read at each step, the LSTM's cache, the
    dropout mask (or None), the output layer's cache, its output o when tied (else None), the
    loss's cache and mask : (batch, T), 1 at real steps."""

    previous: Array
    lstm: Any
    dropout: Array | None
    out: Any
    o: Array | None
    nll: Any
    mask: Array


class LSTMBaseline(ConfiguredModel):
    """p(T) prod_t p(x_t | x_<t, T) with an LSTM over [s_{t-1} E, enc_t], built from a
    ``BaselineConfig`` (its fields are documented there).

    Parameters tree: {"embed": {"E": (K + 1, embed_size)} (row K is <s>), "lstm": ..., "out": ...,
    "bias" : (K,)}, with "out" a Dense(hidden_size, embed_size) when tied, else a Dense(hidden_size,
    K) without its own bias. p(T), ``config`` and ``from_config`` are ``ConfiguredModel``'s, as for
    the latent flow model.
    """

    config_type = BaselineConfig

    def __init__(self, config: BaselineConfig):
        check_positive_int("vocab_size", config.vocab_size)
        check_positive_int("max_length", config.max_length)
        check_positive_int("embed_size", config.embed_size)
        check_dropout_rate(config.dropout)
        if config.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {config.output!r}")
        super().__init__(config)
        self.K, self.max_length, self.tie_weights = config.vocab_size, config.max_length, bool(config.tie_weights)
        self.embed_size, self.output = config.embed_size, config.output
        self.lstm = LSTM(config.embed_size + 2 * config.max_length, config.hidden_size, config.num_layers)
        self.out = Dense(config.hidden_size, config.embed_size if self.tie_weights else config.vocab_size,
                         bias=self.tie_weights)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        E = init.normal(rng, (self.K + 1, self.embed_size), 1.0 / self.embed_size**0.5, dtype)
        return {"embed": {"E": E}, "lstm": self.lstm.init(rng, dtype), "out": self.out.init(rng, dtype),
                "bias": init.zeros((self.K,), dtype)}

    # -- log p(x | T) and its gradient ---------------------------------------------------------

    def _check_x_shape(self, x: Array) -> None:
        """Raise ValueError unless x is (batch, T) (categorical) or (batch, T, K) (bernoulli)."""
        check_shape("x", x, (None, None) if self.output == "categorical" else (None, None, self.K))

    def _prepare(self, params: Tree, x: Array, lengths: Array) -> tuple[Array, SequenceContext]:
        """Validate; return x as integers (tokens, or 0/1 keys) with padding replaced by 0, and
        the batch's context, on the backend."""
        xp = B.xp()
        x, lengths = B.asarray(x), B.asarray(lengths)
        if self.output == "categorical" and not B.is_integer(x):
            raise TypeError(f"x must be an integer array of tokens, got {x.dtype}")
        self._check_x_shape(x)
        batch, T = x.shape[:2]
        if T < 1:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        check_lengths(lengths, batch, T, self.max_length)
        context = sequence_context(lengths, T, self.max_length, B.value(params["embed"]["E"]).dtype)
        if self.output == "categorical":
            x = xp.where(context.real, x, 0)
            check_tokens("x", x, self.K)
            return x, context
        x = xp.where(context.real[..., None], x, 0)
        if not bool(xp.all((x == 0) | (x == 1))):
            raise ValueError("x must hold only 0 and 1 at real steps (a piano roll)")
        return (x == 1).astype(lengths.dtype), context

    def _start(self, n: int, dtype: Any) -> Array:
        """s_{-1} for n sequences: the token K (categorical) or the indicator e_K : (n, K + 1) (bernoulli)."""
        xp = B.xp()
        if self.output == "categorical":
            return xp.full((n,), self.K)
        return xp.broadcast_to((xp.arange(self.K + 1) == self.K).astype(dtype), (n, self.K + 1))

    def _symbols(self, x: Array, dtype: Any) -> Array:
        """s_t: tokens x as they are (categorical) or frames [x_t, 0] : (..., K + 1) (bernoulli)."""
        if self.output == "categorical":
            return x
        return B.xp().concatenate([x.astype(dtype), B.xp().zeros((*x.shape[:-1], 1), dtype)], axis=-1)

    def _embed(self, E: Array, s: Array) -> Array:
        """s E : (..., embed_size), a row lookup for tokens."""
        return E[s] if self.output == "categorical" else s @ E

    def _logits(self, params: Tree, h: Array) -> tuple[Array, Any, Array | None]:
        """(l : (..., K), the output layer's cache, its output o when tied, else None) from LSTM
        outputs h : (..., hidden_size)."""
        o, out_cache = self.out.forward(params["out"], h)
        if not self.tie_weights:
            return o + params["bias"], out_cache, None
        E = params["embed"]["E"][: self.K]
        return o @ E.T + params["bias"], out_cache, o

    def _nll_forward(self, logits: Array, x: Array) -> tuple[Array, Any]:
        """-log p(x_t | x_<t, T) : (batch, T) from logits : (batch, T, K) and validated x."""
        if self.output == "categorical":
            return losses.cross_entropy_forward(logits, x)
        return losses.bernoulli_nll_forward(logits, x)

    def _nll_backward(self, cache: Any, dnll: Array) -> Array:
        """dlogits : (batch, T, K) from dnll : (batch, T)."""
        if self.output == "categorical":
            return losses.cross_entropy_backward(cache, dnll)
        return losses.bernoulli_nll_backward(cache, dnll)

    def forward(self, params: Tree, x: Array, lengths: Array,
                dropout_mask: Array | None = None) -> tuple[Array, BaselineCache]:
        """log p(x | T) : (batch,) in nats, summed over real steps, and a cache for ``backward``.

        x : (batch, T) integers, in [0, K) at real steps (categorical), or (batch, T, K) holding 0
        and 1 at real steps (bernoulli, any integer, bool or float dtype); lengths : (batch,)
        integers in [1, min(T, max_length)]; dropout_mask : (batch, T, hidden_size) multiplying the
        LSTM outputs (``dropout.dropout_mask``), or None.
        """
        self.check_params(params)
        xp = B.xp()
        x, context = self._prepare(params, x, lengths)
        E = params["embed"]["E"]
        dtype = B.value(E).dtype
        batch, T = x.shape[:2]
        if dropout_mask is not None:
            check_dropout_mask(dropout_mask, (batch, T, self.lstm.hidden_size), like=E)
        previous = xp.concatenate([self._start(batch, dtype)[:, None], self._symbols(x, dtype)[:, :-1]], axis=1)
        inputs = xp.concatenate([self._embed(E, previous), context.encoding], axis=-1)
        (h, _), lstm_cache = self.lstm.forward(params["lstm"], inputs, context.mask)
        if dropout_mask is not None:
            h = h * dropout_mask
        logits, out_cache, o = self._logits(params, h)
        nll, nll_cache = self._nll_forward(logits, x)
        cache = BaselineCache(previous, lstm_cache, dropout_mask, out_cache, o, nll_cache, context.mask)
        return -(context.mask * nll).sum(axis=1), cache

    def backward(self, params: Tree, cache: BaselineCache, dlogp: Array) -> Tree:
        """The gradient tree of sum_b dlogp[b] log p(x_b | T_b), from dlogp : (batch,)."""
        previous, lstm_cache, drop, out_cache, o, nll_cache, mask = cache
        dl = self._nll_backward(nll_cache, -dlogp[:, None] * mask)
        K = self.K
        grads: Tree = {"bias": dl.reshape(-1, K).sum(axis=0)}
        dE_out = None
        if self.tie_weights:
            E = params["embed"]["E"][:K]
            dE_out = dl.reshape(-1, K).T @ o.reshape(-1, o.shape[-1])
            dl = dl @ E
        grads["out"], dh = self.out.backward(params["out"], out_cache, dl)
        if drop is not None:
            dh = dh * drop
        grads["lstm"], dx, _ = self.lstm.backward(params["lstm"], lstm_cache, dh)
        de = dx[..., : self.embed_size].reshape(-1, self.embed_size)
        s = previous if self.output == "bernoulli" else losses.one_hot(previous, K + 1, de.dtype)
        grads["embed"] = {"E": s.reshape(-1, K + 1).T @ de}
        if dE_out is not None:
            grads["embed"]["E"][:K] += dE_out
        return {key: grads[key] for key in params}

    def log_prob(self, params: Tree, x: Array, lengths: Array) -> Array:
        """log p(x) = log p(T) + log p(x | T) : (batch,) in nats (no dropout)."""
        log_p, _ = self.forward(params, x, lengths)
        return log_p + self.length_prior.log_prob(lengths).astype(B.value(log_p).dtype)

    def loss_and_grads(self, params: Tree, x: Array, lengths: Array, rng: Any = None) -> tuple[float, Tree]:
        """L = -sum_b log p(x_b | T_b) / sum_b T_b (nats per real step) and its gradient tree.

        rng : a ``B.rng`` generator for the dropout mask when ``dropout`` > 0; None: no dropout.
        ValueError for an empty batch.
        """
        check_nonempty_batch("x", x)
        x, mask = B.asarray(x), None
        if self.hparams.dropout > 0 and rng is not None:
            self._check_x_shape(x)
            batch, T = x.shape[:2]
            dtype = B.value(params["embed"]["E"]).dtype
            mask = dropout_mask(rng, self.hparams.dropout, (batch, T, self.lstm.hidden_size), dtype)
        log_p, cache = self.forward(params, x, lengths, mask)
        scale = 1.0 / float(B.to_numpy(lengths).sum())
        grads = self.backward(params, cache, B.xp().full(log_p.shape, -scale, dtype=log_p.dtype))
        return -float(B.to_numpy(log_p).sum()) * scale, grads

    # -- generation ----------------------------------------------------------------------------

    def _draw(self, logits: Array, rng: Any) -> Array:
        """x_t ~ p(x_t | x_<t, T) from logits : (n, K): tokens (n,) or 0/1 frames (n, K) in the logits' dtype."""
        dtype = logits.dtype
        if self.output == "bernoulli":
            return draw(logits, rng.random(logits.shape, dtype=dtype), self.output).astype(dtype)
        return draw(logits, rng.random((logits.shape[0],), dtype=dtype), self.output)

    def sample(self, params: Tree, n: int, seed: int | None = None,
               lengths: Array | None = None) -> tuple[Array, Array]:
        """Generate n sequences: T ~ p(T) (unless lengths : (n,) is given), then x_t ~ p(x_t | x_<t, T)
        one step after another, each step one LSTM step (``LSTM.step``, the state carried between
        steps) on the symbol just drawn. Every random number comes from ``B.rng(seed)`` (None: fresh
        entropy). The arguments ``(params, n, seed)`` are those of every model's ``sample``
        (``LatentFlowModel``, ``DiscreteFlowModel``); ``lengths`` is this model's own.

        Returns (x, lengths), as the latent flow model's does (a ``DiscreteFlowModel``, of fixed
        length, returns its tokens alone): x : (n, max T) integers in [0, K) (categorical) or (n,
        max T, K) 0/1 floats in the parameters' dtype (bernoulli), 0 at padding; lengths : (n,)
        integers.
        """
        xp = B.xp()
        rng, context = self.generation_start(params, n, seed, lengths)
        lengths, T = context.lengths, context.real.shape[1]
        E = params["embed"]["E"]
        dtype = B.value(E).dtype
        zeros = xp.zeros((self.lstm.num_layers, n, self.lstm.hidden_size), dtype)
        state, s = (zeros, zeros), self._start(n, dtype)
        drawn = []
        for t in range(T):
            state = self.lstm.step(params["lstm"], xp.concatenate([self._embed(E, s), context.encoding[:, t]], axis=-1),
                                   state)
            logits, _, _ = self._logits(params, state[0][-1])
            drawn.append(self._draw(logits, rng))
            s = self._symbols(drawn[-1], dtype)
        x = xp.stack(drawn, axis=1)
        real = context.real
        return xp.where(real if self.output == "categorical" else real[..., None], x, 0), lengths
