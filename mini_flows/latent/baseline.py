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
>>> model = LSTMBaseline(5, max_length=4, embed_size=3, hidden_size=3)
>>> params = model.init(B.host_rng(0))
>>> log_p = model.log_prob(params, B.asarray([[0, 1, 2, 3], [4, 4, 0, 0]]), B.asarray([4, 2]))
>>> tokens, lengths = model.sample(params, 2, seed=1)
>>> rolls = LSTMBaseline(88, max_length=4, embed_size=3, hidden_size=3, output="bernoulli")
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_nonempty_batch, check_positive_int, check_shape, check_tokens
from mini_flows.continuous.length import check_lengths, length_encoding, length_mask
from mini_flows.latent.dropout import check_dropout_mask, dropout_mask
from mini_flows.latent.emission import draw
from mini_flows.latent.inference import OUTPUTS
from mini_flows.latent.length_prior import LengthPrior
from mini_flows.nn import init, losses
from mini_flows.nn.layers import Dense
from mini_flows.nn.lstm import LSTM
from mini_flows.nn.tree import Tree


class LSTMBaseline:
    """p(T) prod_t p(x_t | x_<t, T) with an LSTM over [s_{t-1} E, enc_t].

    Parameters
    ----------
    vocab_size : K, the number of token values (categorical) or of binary keys per step (bernoulli,
        88 for piano rolls).
    max_length : the longest sequence (size of each one-hot length vector and support of p(T)).
    embed_size, hidden_size, num_layers : the embedding and the LSTM (supplement D: 500, 500, 2).
    tie_weights : output weights tied to the input embedding through a projection to embed_size
        (the flow model's emission does the same); otherwise a Dense(hidden_size, K) layer.
    dropout : the probability of dropping each LSTM output unit during training (supplement D).
    output : "categorical" (x : (batch, T) integers) or "bernoulli" (x : (batch, T, K) of 0/1).

    Parameters tree: {"embed": {"E": (K + 1, embed_size)} (row K is <s>), "lstm": ..., "out": ...,
    "bias" : (K,)}, with "out" a Dense(hidden_size, embed_size) when tied, else a Dense(hidden_size,
    K) without its own bias.
    The length prior p(T) is not trained by gradient: it lives in ``self.length_prior`` (uniform
    until ``fit_lengths``), the same ``LengthPrior`` the latent flow model uses.
    """

    def __init__(self, vocab_size: int, max_length: int, embed_size: int = 500, hidden_size: int = 500,
                 num_layers: int = 2, tie_weights: bool = True, dropout: float = 0.0, output: str = "categorical"):
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("max_length", max_length)
        check_positive_int("embed_size", embed_size)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.K, self.max_length, self.tie_weights, self.dropout = vocab_size, max_length, bool(tie_weights), dropout
        self.embed_size, self.output = embed_size, output
        self.lstm = LSTM(embed_size + 2 * max_length, hidden_size, num_layers)
        self.out = Dense(hidden_size, embed_size if self.tie_weights else vocab_size, bias=self.tie_weights)
        self.length_prior = LengthPrior(max_length)
        self.unit = "bits/char" if output == "categorical" else "nats/step"

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        E = init.normal(rng, (self.K + 1, self.embed_size), 1.0 / self.embed_size**0.5, dtype)
        return {"embed": {"E": E}, "lstm": self.lstm.init(rng, dtype), "out": self.out.init(rng, dtype),
                "bias": init.zeros((self.K,), dtype)}

    def fit_lengths(self, lengths: Array) -> None:
        """Set p(T) to the add-one smoothed empirical distribution of ``lengths`` : (N,)."""
        self.length_prior = LengthPrior.fit(lengths, self.max_length)

    # -- log p(x | T) and its gradient ---------------------------------------------------------

    def _check_x_shape(self, x: Array) -> None:
        """Raise ValueError unless x is (batch, T) (categorical) or (batch, T, K) (bernoulli)."""
        check_shape("x", x, (None, None) if self.output == "categorical" else (None, None, self.K))

    def _prepare(self, x: Array, lengths: Array) -> tuple[Array, Array]:
        """Validate; return x as integers (tokens, or 0/1 keys) with padding replaced by 0, and
        lengths, on the backend."""
        xp = B.xp()
        x, lengths = B.asarray(x), B.asarray(lengths)
        if self.output == "categorical" and not B.is_integer(x):
            raise TypeError(f"x must be an integer array of tokens, got {x.dtype}")
        self._check_x_shape(x)
        batch, T = x.shape[:2]
        if T < 1:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        check_lengths(lengths, batch, T, self.max_length)
        real = xp.arange(T)[None, :] < lengths[:, None]
        if self.output == "categorical":
            x = xp.where(real, x, 0)
            check_tokens("x", x, self.K)
            return x, lengths
        x = xp.where(real[..., None], x, 0)
        if not bool(xp.all((x == 0) | (x == 1))):
            raise ValueError("x must hold only 0 and 1 at real steps (a piano roll)")
        return (x == 1).astype(lengths.dtype), lengths

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

    def _logits(self, params: Tree, h: Array) -> tuple[Array, Any]:
        """l : (..., K) from LSTM outputs h : (..., hidden_size)."""
        o, out_cache = self.out.forward(params["out"], h)
        if not self.tie_weights:
            return o + params["bias"], (out_cache, None)
        E = params["embed"]["E"][: self.K]
        return o @ E.T + params["bias"], (out_cache, o)

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
                dropout_mask: Array | None = None) -> tuple[Array, Any]:
        """log p(x | T) : (batch,) in nats, summed over real steps, and a cache for ``backward``.

        x : (batch, T) integers, in [0, K) at real steps (categorical), or (batch, T, K) holding 0
        and 1 at real steps (bernoulli, any integer, bool or float dtype); lengths : (batch,)
        integers in [1, min(T, max_length)]; dropout_mask : (batch, T, hidden_size) multiplying the
        LSTM outputs (``dropout.dropout_mask``), or None.
        """
        xp = B.xp()
        x, lengths = self._prepare(x, lengths)
        E = params["embed"]["E"]
        dtype = B.value(E).dtype
        batch, T = x.shape[:2]
        if dropout_mask is not None:
            check_dropout_mask(dropout_mask, (batch, T, self.lstm.hidden_size), like=E)
        previous = xp.concatenate([self._start(batch, dtype)[:, None], self._symbols(x, dtype)[:, :-1]], axis=1)
        enc = length_encoding(lengths, T, self.max_length, dtype)
        mask = length_mask(lengths, T, dtype)
        (h, _), lstm_cache = self.lstm.forward(params["lstm"], xp.concatenate([self._embed(E, previous), enc], axis=-1),
                                               mask)
        if dropout_mask is not None:
            h = h * dropout_mask
        logits, logits_cache = self._logits(params, h)
        nll, nll_cache = self._nll_forward(logits, x)
        cache = (previous, lstm_cache, dropout_mask, logits_cache, nll_cache, mask)
        return -(mask * nll).sum(axis=1), cache

    def backward(self, params: Tree, cache: Any, dlogp: Array) -> Tree:
        """The gradient tree of sum_b dlogp[b] log p(x_b | T_b), from dlogp : (batch,)."""
        previous, lstm_cache, drop, (out_cache, o), nll_cache, mask = cache
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
        if self.dropout > 0 and rng is not None:
            self._check_x_shape(x)
            batch, T = x.shape[:2]
            dtype = B.value(params["embed"]["E"]).dtype
            mask = dropout_mask(rng, self.dropout, (batch, T, self.lstm.hidden_size), dtype)
        log_p, cache = self.forward(params, x, lengths, mask)
        scale = 1.0 / float(B.to_numpy(lengths).sum())
        grads = self.backward(params, cache, B.xp().full(log_p.shape, -scale, dtype=log_p.dtype))
        return -float(B.to_numpy(log_p).sum()) * scale, grads

    def per_token(self, nats: Array, lengths: Array) -> float:
        """sum(nats) / sum(lengths) in ``self.unit``: bits per character (categorical; divided by
        log 2) or nats per time step (bernoulli)."""
        total = float(B.to_numpy(B.value(nats)).sum()) / float(B.to_numpy(lengths).sum())
        return total / math.log(2) if self.output == "categorical" else total

    # -- generation ----------------------------------------------------------------------------

    def _draw(self, logits: Array, rng: Any) -> Array:
        """x_t ~ p(x_t | x_<t, T) from logits : (n, K): tokens (n,) or 0/1 frames (n, K) in the logits' dtype."""
        dtype = logits.dtype
        if self.output == "bernoulli":
            return draw(logits, rng.random(logits.shape, dtype=dtype), self.output).astype(dtype)
        return draw(logits, rng.random((logits.shape[0],), dtype=dtype), self.output)

    def sample(self, params: Tree, n: int, seed: int | None, lengths: Array | None = None) -> tuple[Array, Array]:
        """Generate n sequences: T ~ p(T) (unless lengths : (n,) is given), then x_t ~ p(x_t | x_<t, T)
        one step after another, each step one LSTM step (``LSTM.step``, the state carried between
        steps) on the symbol just drawn.

        Returns (x, lengths): x : (n, max T) integers in [0, K) (categorical) or (n, max T, K) 0/1
        floats in the parameters' dtype (bernoulli), 0 at padding.
        """
        check_positive_int("n", n)
        xp = B.xp()
        rng = B.rng(seed)
        lengths = self.length_prior.lengths_for(n, rng, lengths)
        T = int(lengths.max())
        E = params["embed"]["E"]
        dtype = B.value(E).dtype
        encoding = length_encoding(lengths, T, self.max_length, dtype)
        zeros = xp.zeros((self.lstm.num_layers, n, self.lstm.hidden_size), dtype)
        state, s = (zeros, zeros), self._start(n, dtype)
        drawn = []
        for t in range(T):
            state = self.lstm.step(params["lstm"], xp.concatenate([self._embed(E, s), encoding[:, t]], axis=-1), state)
            logits, _ = self._logits(params, state[0][-1])
            drawn.append(self._draw(logits, rng))
            s = self._symbols(drawn[-1], dtype)
        real = xp.arange(T)[None, :] < lengths[:, None]
        x = xp.stack(drawn, axis=1)
        return xp.where(real if self.output == "categorical" else real[..., None], x, 0), lengths
