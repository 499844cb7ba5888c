"""The LSTM language-model baseline of section 6, with the latent model's length conditioning.

The paper's "gold standard": a discrete autoregressive model (Press and Wolf 2017) of the same
size as the flow model's components, conditioned on the length T the way the flow model is
(supplement C), so both define p(x) = p(T) p(x | T) with the same p(T):

    p(x | T) = prod_{t < T} p(x_t | x_<t, T)
    h_t      = LSTM([E[x_{t-1}], enc_t])          x_{-1} = <s>, a start token with its own row of E
    l_t      = (h_t W + c) E_{:K}^T + bias        tied (the emission's form), or
    l_t      = h_t W + bias                        untied (a Dense layer)
    p(x_t | x_<t, T) = softmax(l_t)[x_t]

where enc_t is the two one-hot vectors of supplement C (distance t from the start and T - 1 - t
from the end), so the model knows at every step how many tokens remain. Training minimises the
next-token cross-entropy per real token; supplement D's dropout acts on the LSTM's outputs.
Generation is sequential: each token is drawn before the next step can run (section 6.3, Figure 7).

Padding: steps t >= lengths[b] may hold any integer; they never change a score.

Example
-------
>>> model = LSTMBaseline(5, max_length=4, embed_size=3, hidden_size=3)
>>> params = model.init(B.host_rng(0))
>>> log_p = model.log_prob(params, B.asarray([[0, 1, 2, 3], [4, 4, 0, 0]]), B.asarray([4, 2]))
>>> tokens, lengths = model.sample(params, 2, seed=1)
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int, check_shape, check_tokens
from mini_flows.continuous.length import check_lengths, length_encoding, length_mask
from mini_flows.latent.dropout import check_dropout_mask, dropout_mask
from mini_flows.latent.length_prior import LengthPrior
from mini_flows.nn import init, losses
from mini_flows.nn.layers import Dense, Embedding
from mini_flows.nn.lstm import LSTM
from mini_flows.nn.tree import Tree


class LSTMBaseline:
    """p(T) prod_t p(x_t | x_<t, T) with an LSTM over [E[x_{t-1}], enc_t].

    Parameters
    ----------
    vocab_size : K, the number of token values.
    max_length : the longest sequence (size of each one-hot length vector and support of p(T)).
    embed_size, hidden_size, num_layers : the embedding and the LSTM (supplement D: 500, 500, 2).
    tie_weights : output weights tied to the input embedding through a projection to embed_size
        (the flow model's emission does the same); otherwise a Dense(hidden_size, K) layer.
    dropout : the probability of dropping each LSTM output unit during training (supplement D).

    Parameters tree: {"embed": {"E": (K + 1, embed_size)} (row K is <s>), "lstm": ..., "out": ...,
    "bias" : (K,)}, with "out" a Dense(hidden_size, embed_size) when tied, else a Dense(hidden_size,
    K) without its own bias.
    The length prior p(T) is not trained by gradient: it lives in ``self.length_prior`` (uniform
    until ``fit_lengths``), the same ``LengthPrior`` the latent flow model uses.
    """

    def __init__(self, vocab_size: int, max_length: int, embed_size: int = 500, hidden_size: int = 500,
                 num_layers: int = 2, tie_weights: bool = True, dropout: float = 0.0):
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("max_length", max_length)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.K, self.max_length, self.tie_weights, self.dropout = vocab_size, max_length, bool(tie_weights), dropout
        self.embed = Embedding(vocab_size + 1, embed_size)
        self.lstm = LSTM(embed_size + 2 * max_length, hidden_size, num_layers)
        self.out = Dense(hidden_size, embed_size if self.tie_weights else vocab_size, bias=self.tie_weights)
        self.length_prior = LengthPrior(max_length)
        self.unit = "bits/char"

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"embed": self.embed.init(rng, dtype), "lstm": self.lstm.init(rng, dtype),
                "out": self.out.init(rng, dtype), "bias": init.zeros((self.K,), dtype)}

    def fit_lengths(self, lengths: Array) -> None:
        """Set p(T) to the add-one smoothed empirical distribution of ``lengths`` : (N,)."""
        self.length_prior = LengthPrior.fit(lengths, self.max_length)

    # -- log p(x | T) and its gradient ---------------------------------------------------------

    def _prepare(self, tokens: Array, lengths: Array) -> tuple[Array, Array]:
        """Validate; return tokens with padding replaced by 0 and lengths, on the backend."""
        xp = B.xp()
        tokens, lengths = B.asarray(tokens), B.asarray(lengths)
        if not B.is_integer(tokens):
            raise TypeError(f"tokens must be an integer array, got {tokens.dtype}")
        check_shape("tokens", tokens, (None, None))
        batch, T = tokens.shape
        if T < 1:
            raise ValueError(f"tokens must have at least one time step, got shape {tuple(tokens.shape)}")
        check_lengths(lengths, batch, T, self.max_length)
        real = xp.arange(T)[None, :] < lengths[:, None]
        tokens = xp.where(real, tokens, 0)
        check_tokens("tokens", tokens, self.K)
        return tokens, lengths

    def _logits(self, params: Tree, h: Array) -> tuple[Array, Any]:
        """l : (..., K) from LSTM outputs h : (..., hidden_size)."""
        o, out_cache = self.out.forward(params["out"], h)
        if not self.tie_weights:
            return o + params["bias"], (out_cache, None)
        E = params["embed"]["E"][: self.K]
        return o @ E.T + params["bias"], (out_cache, o)

    def forward(self, params: Tree, tokens: Array, lengths: Array,
                dropout_mask: Array | None = None) -> tuple[Array, Any]:
        """log p(x | T) : (batch,) in nats, summed over real steps, and a cache for ``backward``.

        tokens : (batch, T) integers, in [0, K) at real steps; lengths : (batch,) integers in
        [1, min(T, max_length)]; dropout_mask : (batch, T, hidden_size) multiplying the LSTM
        outputs (``dropout.dropout_mask``), or None.
        """
        xp = B.xp()
        tokens, lengths = self._prepare(tokens, lengths)
        E = params["embed"]["E"]
        dtype = B.value(E).dtype
        batch, T = tokens.shape
        if dropout_mask is not None:
            check_dropout_mask(dropout_mask, (batch, T, self.lstm.hidden_size), like=E)
        previous = xp.concatenate([xp.full((batch, 1), self.K, dtype=tokens.dtype), tokens[:, :-1]], axis=1)
        e, embed_cache = self.embed.forward(params["embed"], previous)
        enc = length_encoding(lengths, T, self.max_length, dtype)
        mask = length_mask(lengths, T, dtype)
        (h, _), lstm_cache = self.lstm.forward(params["lstm"], xp.concatenate([e, enc], axis=-1), mask)
        if dropout_mask is not None:
            h = h * dropout_mask
        logits, logits_cache = self._logits(params, h)
        nll, ce_cache = losses.cross_entropy_forward(logits, tokens)
        cache = (embed_cache, lstm_cache, dropout_mask, logits_cache, ce_cache, mask)
        return -(mask * nll).sum(axis=1), cache

    def backward(self, params: Tree, cache: Any, dlogp: Array) -> Tree:
        """The gradient tree of sum_b dlogp[b] log p(x_b | T_b), from dlogp : (batch,)."""
        embed_cache, lstm_cache, drop, (out_cache, o), ce_cache, mask = cache
        dl = losses.cross_entropy_backward(ce_cache, -dlogp[:, None] * mask)
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
        grads["embed"], _ = self.embed.backward(params["embed"], embed_cache, dx[..., : self.embed.dim])
        if dE_out is not None:
            grads["embed"]["E"][:K] += dE_out
        return {key: grads[key] for key in params}

    def log_prob(self, params: Tree, tokens: Array, lengths: Array) -> Array:
        """log p(x) = log p(T) + log p(x | T) : (batch,) in nats (no dropout)."""
        log_p, _ = self.forward(params, tokens, lengths)
        return log_p + self.length_prior.log_prob(lengths).astype(B.value(log_p).dtype)

    def loss_and_grads(self, params: Tree, tokens: Array, lengths: Array,
                       rng: Any = None) -> tuple[float, Tree]:
        """L = -sum_b log p(x_b | T_b) / sum_b T_b (nats per real token) and its gradient tree.

        rng : a ``B.rng`` generator for the dropout mask when ``dropout`` > 0; None: no dropout.
        """
        tokens, mask = B.asarray(tokens), None
        if self.dropout > 0 and rng is not None:
            check_shape("tokens", tokens, (None, None))
            batch, T = tokens.shape
            dtype = B.value(params["embed"]["E"]).dtype
            mask = dropout_mask(rng, self.dropout, (batch, T, self.lstm.hidden_size), dtype)
        log_p, cache = self.forward(params, tokens, lengths, mask)
        scale = 1.0 / float(B.to_numpy(lengths).sum())
        grads = self.backward(params, cache, B.xp().full(log_p.shape, -scale, dtype=log_p.dtype))
        return -float(B.to_numpy(log_p).sum()) * scale, grads

    def per_token(self, nats: Array, lengths: Array) -> float:
        """sum(nats) / sum(lengths) / log 2: bits per character."""
        return float(B.to_numpy(B.value(nats)).sum()) / float(B.to_numpy(lengths).sum()) / math.log(2)

    # -- generation ----------------------------------------------------------------------------

    def sample(self, params: Tree, n: int, seed: int | None, lengths: Array | None = None) -> tuple[Array, Array]:
        """Generate n sequences: T ~ p(T) (unless lengths : (n,) is given), then x_t ~ p(x_t | x_<t, T)
        one step after another, each step one LSTM step on the token just drawn.

        The steps run ``LSTM.step``, the state carried between steps.

        Returns (tokens, lengths): tokens : (n, max T) integers in [0, K), 0 at padding.
        """
        check_positive_int("n", n)
        xp = B.xp()
        rng = B.rng(seed)
        lengths = self.length_prior.sample(n, rng) if lengths is None else B.asarray(lengths)
        check_lengths(lengths, n, self.max_length, self.max_length)
        T = int(lengths.max())
        E = params["embed"]["E"]
        dtype = B.value(E).dtype
        encoding = length_encoding(lengths, T, self.max_length, dtype)
        zeros = xp.zeros((self.lstm.num_layers, n, self.lstm.hidden_size), dtype)
        state = (zeros, zeros)
        token = xp.full((n,), self.K)
        drawn = []
        for t in range(T):
            state = self.lstm.step(params["lstm"], xp.concatenate([E[token], encoding[:, t]], axis=-1), state)
            logits, _ = self._logits(params, state[0][-1])
            p_t = xp.exp(logits - logits.max(axis=-1, keepdims=True))
            cdf = xp.cumsum(p_t / p_t.sum(axis=-1, keepdims=True), axis=-1)
            token = xp.minimum((cdf < rng.random((n, 1), dtype=dtype)).sum(axis=-1), self.K - 1)
            drawn.append(token)
        real = xp.arange(T)[None, :] < lengths[:, None]
        return xp.where(real, xp.stack(drawn, axis=1), 0), lengths

