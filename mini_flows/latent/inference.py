"""The inference network q(z | x) of section 5: a diagonal Gaussian per step from a BiLSTM.

    e_t          = E[x_t]  (categorical tokens)   or   x_t E  (a 0/1 vector over K keys)
    h_{1:T}      = BiLSTM([e_t, enc_t])                         enc_t: length encoding (supplement C)
    mu_t, log s_t^2 = split(h_t W + b)
    q(z | x)     = prod_t N(z_t; mu_t, s_t^2 I_H)

and the reparameterisation z = mu + exp(log s^2 / 2) * noise with noise ~ N(0, I) given by the
caller, so a fixed noise gives a fixed sample. The embedding E : (K, embed_size) is passed in: the
model holds it once, shared with the emission, which ties its output weights to it (supplement D).

Padding: steps t >= lengths[b] are masked in the BiLSTM; mu and log s^2 there are meaningless and
every user ignores them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.continuous.length import SequenceContext
from mini_flows.latent.config import OUTPUTS, LatentConfig
from mini_flows.nn.layers import Dense, affine
from mini_flows.nn.lstm import BiLSTM
from mini_flows.nn.tree import Tree

_LOG_2PI = math.log(2 * math.pi)


class InferenceCache(NamedTuple):
    """``InferenceNetwork.forward``'s cache: the validated x, the BiLSTM's and the output layer's caches."""

    x: Array
    lstm: Any
    out: Any


class InferenceNetwork:
    """q(z_t | x) = N(mu_t, diag exp(logvar_t)) for every step t.

    Built from a ``LatentConfig``: vocab_size K, latent_dim H, max_length (size of each one-hot
    length vector), embed_size, hidden_size and num_layers (the BiLSTM), output ("categorical": x :
    (batch, T) integers; "bernoulli": x : (batch, T, K) of 0/1).

    Parameters tree: {"bilstm": ..., "out": Dense(2 hidden, 2H)}; the embedding E : (K, embed_size)
    is an argument of ``forward``, its gradient a result of ``backward``.
    """

    def __init__(self, config: LatentConfig):
        if config.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {config.output!r}")
        for name in ("vocab_size", "latent_dim", "max_length", "embed_size"):
            check_positive_int(name, getattr(config, name))
        self.K, self.H, self.embed_size, self.output = (
            config.vocab_size, config.latent_dim, config.embed_size, config.output)
        self.bilstm = BiLSTM(config.embed_size + 2 * config.max_length, config.hidden_size, config.num_layers)
        self.out = Dense(2 * config.hidden_size, 2 * config.latent_dim)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"bilstm": self.bilstm.init(rng, dtype), "out": self.out.init(rng, dtype)}

    def forward(self, params: Tree, E: Array, x: Array,
                context: SequenceContext) -> tuple[tuple[Array, Array], InferenceCache]:
        """((mu, logvar), cache), each (batch, T, H), from E : (K, embed_size), validated x (padding
        already zeroed) and the batch's context."""
        xp = B.xp()
        e = E[x] if self.output == "categorical" else x @ E
        h, lstm_cache = self.bilstm.forward(params["bilstm"], xp.concatenate([e, context.encoding], axis=-1),
                                            context.mask)
        out, out_cache = affine(params["out"], h), h  # Dense.forward's map and cache; h is the BiLSTM's output
        return (out[..., : self.H], out[..., self.H :]), InferenceCache(x, lstm_cache, out_cache)

    def backward(self, params: Tree, cache: InferenceCache, dmu: Array, dlogvar: Array) -> tuple[Tree, Array]:
        """(parameter gradients, dE : (K, embed_size)) from dmu, dlogvar : (batch, T, H) (x carries no gradient)."""
        xp = B.xp()
        out_grads, dh = self.out.backward(params["out"], cache.out, xp.concatenate([dmu, dlogvar], axis=-1))
        lstm_grads, de = self.bilstm.backward(params["bilstm"], cache.lstm, dh, input_columns=self.embed_size)  # e's
        de = de.reshape(-1, self.embed_size)
        x = cache.x
        if self.output == "categorical":
            x = (x.reshape(-1)[:, None] == xp.arange(self.K)[None, :]).astype(de.dtype)
        dE = x.reshape(-1, self.K).T @ de
        return {"bilstm": lstm_grads, "out": out_grads}, dE


def reparameterise(mu: Array, logvar: Array, noise: Array) -> Array:
    """z = mu + exp(logvar / 2) * noise : (S, batch, T, H) for mu, logvar : (batch, T, H), noise : (S, batch, T, H)."""
    return mu[None] + B.xp().exp(0.5 * logvar)[None] * noise


def log_q(logvar: Array, noise: Array, real: Array) -> Array:
    """log q(z | x) : (S, batch) at z = mu + s * noise, summed over real steps:

        log N(z; mu, s^2) = -1/2 sum_h (noise^2 + log s^2 + log 2 pi).

    real : (batch, T) booleans, True at real steps."""
    per_step = -0.5 * (noise * noise + logvar[None] + _LOG_2PI).sum(axis=-1)
    return B.xp().where(real[None], per_step, 0.0).sum(axis=-1)
