"""The emission p(x_t | z, T) of section 4.1: every x_t is independent given the whole latent z.

A BiLSTM reads [z_t, enc_t] (enc_t the length encoding of supplement C), giving forward states
f_t (from z_<=t) and backward states b_t (from z_>=t). The features for x_t are z_t itself with
the forward state BEFORE t and the backward state AFTER t,

    u_t = [z_t, f_{t-1}, b_{t+1}]          (f_{-1} = 0, b_T = 0: zero at the ends)
    o_t = u_t W + c                        (a projection to the embedding size)
    l_t = o_t E^T + bias                   (output weights tied to the inference embedding E)

so z_t enters the features for x_t only directly, and the other steps only through context.
The output is a categorical over K tokens, log p(x_t | z) = log softmax(l_t)[x_t], or K
independent Bernoulli keys (piano rolls), log p(x_t | z) = sum_k x_tk l_tk - softplus(l_tk).

log p(x | z, T) = sum over real steps t < T of log p(x_t | z); padded steps contribute nothing.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.continuous.length import length_encoding, length_mask
from mini_flows.latent.inference import OUTPUTS
from mini_flows.nn import init, losses
from mini_flows.nn.activations import sigmoid
from mini_flows.nn.layers import Dense
from mini_flows.nn.lstm import BiLSTM
from mini_flows.nn.tree import Tree


def draw(logits: Array, u: Array, output: str) -> Array:
    """x ~ p(x | logits) from uniforms u in [0, 1), by inverse CDF.

    categorical: logits (..., K), u (...) -> tokens (...), the k with cdf[k - 1] <= u < cdf[k]
    (clipped to K - 1 against round-off in cdf[K - 1]); bernoulli: logits (..., K), u (..., K) ->
    booleans (..., K), key k on where u_k < sigmoid(l_k).
    """
    if output == "bernoulli":
        return u < sigmoid(logits)
    xp = B.xp()
    p = xp.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = xp.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    return xp.minimum((cdf < u[..., None]).sum(axis=-1), logits.shape[-1] - 1)


class Emission:
    """p(x_t | z, T) with features [z_t, f_{t-1}, b_{t+1}] from a BiLSTM over z.

    Parameters
    ----------
    vocab_size : K (tokens or keys); latent_dim : H; max_length : size of each one-hot length vector.
    embed_size : size of the tied output embedding E : (K, embed_size).
    hidden_size, num_layers : the BiLSTM.
    output : "categorical" or "bernoulli".

    Parameters tree: {"bilstm": ..., "proj": Dense(H + 2 hidden, embed_size), "bias": (K,)}; E is
    passed in (it lives in the inference network's parameters).
    """

    def __init__(self, vocab_size: int, latent_dim: int, max_length: int, embed_size: int, hidden_size: int,
                 num_layers: int = 1, output: str = "categorical"):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.K, self.H, self.max_length, self.hidden_size, self.output = (
            vocab_size, latent_dim, max_length, hidden_size, output)
        self.bilstm = BiLSTM(latent_dim + 2 * max_length, hidden_size, num_layers)
        self.proj = Dense(latent_dim + 2 * hidden_size, embed_size)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"bilstm": self.bilstm.init(rng, dtype), "proj": self.proj.init(rng, dtype),
                "bias": init.zeros((self.K,), dtype)}

    def logits_forward(self, params: Tree, E: Array, z: Array, lengths: Array) -> tuple[Array, Any]:
        """l : (batch, T, K) from z : (batch, T, H), lengths : (batch,) and E : (K, embed_size)."""
        xp = B.xp()
        batch, T, _ = z.shape
        dtype = B.value(z).dtype
        enc = length_encoding(lengths, T, self.max_length, dtype)
        h, lstm_cache = self.bilstm.forward(params["bilstm"], xp.concatenate([z, enc], axis=-1),
                                            length_mask(lengths, T, dtype))
        zeros = xp.zeros((batch, 1, self.hidden_size), dtype)
        f_before = xp.concatenate([zeros, h[:, :-1, : self.hidden_size]], axis=1)  # f_{t-1}
        b_after = xp.concatenate([h[:, 1:, self.hidden_size :], zeros], axis=1)  # b_{t+1}; 0 past each length
        o, proj_cache = self.proj.forward(params["proj"], xp.concatenate([z, f_before, b_after], axis=-1))
        return o @ E.T + params["bias"], (lstm_cache, proj_cache, o, E)

    def logits_backward(self, params: Tree, cache: Any, dl: Array) -> tuple[Tree, Array, Array]:
        """(grads, dE, dz) from dl : (batch, T, K)."""
        xp = B.xp()
        lstm_cache, proj_cache, o, E = cache
        K, n = dl.shape[-1], o.shape[-1]
        dE = dl.reshape(-1, K).T @ o.reshape(-1, n)
        proj_grads, du = self.proj.backward(params["proj"], proj_cache, dl @ E)
        H, hid = self.H, self.hidden_size
        dz, df, db = du[..., :H], du[..., H : H + hid], du[..., H + hid :]
        zeros = xp.zeros_like(df[:, :1])
        dh = xp.concatenate([xp.concatenate([df[:, 1:], zeros], axis=1),  # f_t feeds u_{t+1}
                             xp.concatenate([zeros, db[:, :-1]], axis=1)], axis=-1)  # b_t feeds u_{t-1}
        lstm_grads, dinput = self.bilstm.backward(params["bilstm"], lstm_cache, dh)
        grads = {"bilstm": lstm_grads, "proj": proj_grads, "bias": dl.reshape(-1, K).sum(axis=0)}
        return grads, dE, dz + dinput[..., :H]

    def log_prob_forward(self, params: Tree, E: Array, z: Array, x: Array, lengths: Array) -> tuple[Array, Any]:
        """log p(x | z, T) : (batch,) in nats, summed over real steps.

        z : (batch, T, H); x : (batch, T) integers in [0, K) (categorical) or (batch, T, K) of 0/1
        in z's dtype (bernoulli), padding already replaced by valid values; lengths : (batch,).
        """
        l, cache = self.logits_forward(params, E, z, lengths)
        real = length_mask(lengths, z.shape[1], B.value(z).dtype)
        if self.output == "categorical":
            nll, ce_cache = losses.cross_entropy_forward(l, x)
            return -(real * nll).sum(axis=1), (cache, ce_cache, real)
        nll, bern_cache = losses.bernoulli_nll_forward(l, x)
        return -(real * nll).sum(axis=1), (cache, bern_cache, real)

    def log_prob_backward(self, params: Tree, cache: Any, dlogp: Array) -> tuple[Tree, Array, Array]:
        """(grads, dE, dz) from dlogp : (batch,)."""
        logits_cache, out_cache, real = cache
        d = dlogp[:, None] * real  # d/d log p(x_t | z)
        backward = losses.cross_entropy_backward if self.output == "categorical" else losses.bernoulli_nll_backward
        dl = backward(out_cache, -d)
        return self.logits_backward(params, logits_cache, dl)
