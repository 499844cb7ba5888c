"""The inference network q(z | x) of section 5: a diagonal Gaussian per step from a BiLSTM.

    e_t          = E[x_t]  (categorical tokens)   or   x_t E  (a 0/1 vector over K keys)
    h_{1:T}      = BiLSTM([e_t, enc_t])                         enc_t: length encoding (supplement C)
    mu_t, log s_t^2 = split(h_t W + b)
    q(z | x)     = prod_t N(z_t; mu_t, s_t^2 I_H)

and the reparameterisation z = mu + exp(log s^2 / 2) * noise with noise ~ N(0, I) given by the
caller, so a fixed noise gives a fixed sample. The matrix E : (K, embed_size) is the one the
emission ties its output weights to (supplement D).

Padding: steps t >= lengths[b] are masked in the BiLSTM; mu and log s^2 there are meaningless and
every user ignores them.
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.continuous.length import length_encoding, length_mask
from mini_flows.nn import init
from mini_flows.nn.layers import Dense
from mini_flows.nn.lstm import BiLSTM
from mini_flows.nn.tree import Tree

OUTPUTS = ("categorical", "bernoulli")
_LOG_2PI = math.log(2 * math.pi)


class InferenceNetwork:
    """q(z_t | x) = N(mu_t, diag exp(logvar_t)) for every step t.

    Parameters
    ----------
    vocab_size : K, the number of token values ("categorical") or of binary keys per step ("bernoulli").
    latent_dim : H.
    max_length : size of each one-hot length vector.
    embed_size, hidden_size, num_layers : the embedding and the BiLSTM.
    output : "categorical" (x : (batch, T) integers) or "bernoulli" (x : (batch, T, K) of 0/1).

    Parameters tree: {"embed": {"E": (K, embed_size)}, "bilstm": ..., "out": Dense(2 hidden, 2H)}.
    """

    def __init__(self, vocab_size: int, latent_dim: int, max_length: int, embed_size: int, hidden_size: int,
                 num_layers: int = 1, output: str = "categorical"):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        for name, n in (("vocab_size", vocab_size), ("latent_dim", latent_dim), ("max_length", max_length),
                        ("embed_size", embed_size)):
            check_positive_int(name, n)
        self.K, self.H, self.max_length, self.embed_size, self.output = (
            vocab_size, latent_dim, max_length, embed_size, output)
        self.bilstm = BiLSTM(embed_size + 2 * max_length, hidden_size, num_layers)
        self.out = Dense(2 * hidden_size, 2 * latent_dim)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        embed = {"E": init.normal(rng, (self.K, self.embed_size), 1.0 / self.embed_size**0.5, dtype)}
        return {"embed": embed, "bilstm": self.bilstm.init(rng, dtype), "out": self.out.init(rng, dtype)}

    def forward(self, params: Tree, x: Array, lengths: Array) -> tuple[tuple[Array, Array], Any]:
        """((mu, logvar), cache), each (batch, T, H), for validated x (padding already zeroed) and lengths."""
        xp = B.xp()
        E = params["embed"]["E"]
        e = E[x] if self.output == "categorical" else x @ E
        T = x.shape[1]
        dtype = B.value(E).dtype
        enc = length_encoding(lengths, T, self.max_length, dtype)
        mask = length_mask(lengths, T, dtype)
        h, lstm_cache = self.bilstm.forward(params["bilstm"], xp.concatenate([e, enc], axis=-1), mask)
        out, out_cache = self.out.forward(params["out"], h)
        return (out[..., : self.H], out[..., self.H :]), (x, lstm_cache, out_cache)

    def backward(self, params: Tree, cache: Any, dmu: Array, dlogvar: Array) -> Tree:
        """Parameter gradients from dmu, dlogvar : (batch, T, H) (x carries no gradient)."""
        xp = B.xp()
        x, lstm_cache, out_cache = cache
        out_grads, dh = self.out.backward(params["out"], out_cache, xp.concatenate([dmu, dlogvar], axis=-1))
        lstm_grads, dinput = self.bilstm.backward(params["bilstm"], lstm_cache, dh)
        de = dinput[..., : self.embed_size].reshape(-1, self.embed_size)
        if self.output == "categorical":
            x = (x.reshape(-1)[:, None] == xp.arange(self.K)[None, :]).astype(de.dtype)
        dE = x.reshape(-1, self.K).T @ de
        return {"embed": {"E": dE}, "bilstm": lstm_grads, "out": out_grads}


def reparameterise(mu: Array, logvar: Array, noise: Array) -> Array:
    """z = mu + exp(logvar / 2) * noise : (S, batch, T, H) for mu, logvar : (batch, T, H), noise : (S, batch, T, H)."""
    return mu[None] + B.xp().exp(0.5 * logvar)[None] * noise


def log_q(logvar: Array, noise: Array, real: Array) -> Array:
    """log q(z | x) : (S, batch) at z = mu + s * noise, summed over real steps:

        log N(z; mu, s^2) = -1/2 sum_h (noise^2 + log s^2 + log 2 pi).

    real : (batch, T) booleans, True at real steps."""
    per_step = -0.5 * (noise * noise + logvar[None] + _LOG_2PI).sum(axis=-1)
    return B.xp().where(real[None], per_step, 0.0).sum(axis=-1)
