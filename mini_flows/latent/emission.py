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

from typing import Any, NamedTuple

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.continuous.length import SequenceContext
from mini_flows.latent.config import OUTPUTS, LatentConfig
from mini_flows.nn import init, losses
from mini_flows.nn.activations import sigmoid
from mini_flows.nn.layers import Dense, affine
from mini_flows.nn.lstm import BiLSTM
from mini_flows.nn.sampling import categorical_draw
from mini_flows.nn.tree import Tree


def draw(logits: Array, u: Array, output: str) -> Array:
    """x ~ p(x | logits) from uniforms u in [0, 1), by inverse CDF.

    categorical: logits (..., K), u (...) -> tokens (...), ``nn.sampling.categorical_draw`` of
    softmax(logits); bernoulli: logits (..., K), u (..., K) -> booleans (..., K), key k on where
    u_k < sigmoid(l_k).
    """
    if output == "bernoulli":
        return u < sigmoid(logits)
    xp = B.xp()
    p = xp.exp(logits - logits.max(axis=-1, keepdims=True))
    return categorical_draw(p / p.sum(axis=-1, keepdims=True), u)


class LogitsCache(NamedTuple):
    """``Emission.logits_forward``'s cache: the BiLSTM's and the projection's caches, the projection
    o : (batch, T, embed_size) and the embedding E."""

    lstm: Any
    proj: Any
    o: Array
    E: Array


class EmissionCache(NamedTuple):
    """``Emission.log_prob_and_cache``'s cache: the logits' cache, the loss's cache and mask : (batch, T)."""

    logits: LogitsCache
    nll: Any
    mask: Array


class Emission:
    """p(x_t | z, T) with features [z_t, f_{t-1}, b_{t+1}] from a BiLSTM over z.

    Built from a ``LatentConfig``: vocab_size K (tokens or keys), latent_dim H, max_length (size of
    each one-hot length vector), embed_size (of the tied output embedding E : (K, embed_size)),
    hidden_size and num_layers (the BiLSTM), output ("categorical" or "bernoulli").

    Parameters tree: {"bilstm": ..., "proj": Dense(H + 2 hidden, embed_size), "bias": (K,)}; E is
    passed in (the model holds it once, shared with the inference network).
    """

    def __init__(self, config: LatentConfig):
        if config.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {config.output!r}")
        self.K, self.H, self.hidden_size, self.output = (
            config.vocab_size, config.latent_dim, config.hidden_size, config.output)
        self.bilstm = BiLSTM(config.latent_dim + 2 * config.max_length, config.hidden_size, config.num_layers)
        self.proj = Dense(config.latent_dim + 2 * config.hidden_size, config.embed_size)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"bilstm": self.bilstm.init(rng, dtype), "proj": self.proj.init(rng, dtype),
                "bias": init.zeros((self.K,), dtype)}

    def logits_forward(self, params: Tree, E: Array, z: Array, context: SequenceContext) -> tuple[Array, LogitsCache]:
        """l : (batch, T, K) from z : (batch, T, H), the batch's context and E : (K, embed_size)."""
        xp = B.xp()
        batch, T, _ = z.shape
        dtype = B.value(z).dtype
        h, lstm_cache = self.bilstm.forward(params["bilstm"], xp.concatenate([z, context.encoding], axis=-1),
                                            context.mask)
        zeros = xp.zeros((batch, 1, self.hidden_size), dtype)
        f_before = xp.concatenate([zeros, h[:, :-1, : self.hidden_size]], axis=1)  # f_{t-1}
        b_after = xp.concatenate([h[:, 1:, self.hidden_size :], zeros], axis=1)  # b_{t+1}; 0 past each length
        u = xp.concatenate([z, f_before, b_after], axis=-1)  # checked already: z by the BiLSTM, the rest its output
        o, proj_cache = affine(params["proj"], u), u  # Dense.forward's map and cache, unchecked
        return o @ E.T + params["bias"], LogitsCache(lstm_cache, proj_cache, o, E)

    def logits_backward(self, params: Tree, cache: LogitsCache, dl: Array) -> tuple[Tree, Array, Array]:
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
        lstm_grads, dinput = self.bilstm.backward(params["bilstm"], lstm_cache, dh, input_columns=H)  # z's, not enc's
        grads = {"bilstm": lstm_grads, "proj": proj_grads, "bias": dl.reshape(-1, K).sum(axis=0)}
        return grads, dE, dz + dinput

    def log_prob_and_cache(self, params: Tree, E: Array, z: Array, x: Array,
                           context: SequenceContext) -> tuple[Array, EmissionCache]:
        """log p(x | z, T) : (batch,) in nats, summed over real steps.

        z : (batch, T, H); x : (batch, T) integers in [0, K) (categorical) or (batch, T, K) of 0/1
        in z's dtype (bernoulli), padding already replaced by valid values; context : the batch's.
        """
        l, cache = self.logits_forward(params, E, z, context)
        forward = losses.cross_entropy_forward if self.output == "categorical" else losses.bernoulli_nll_forward
        nll, nll_cache = forward(l, x)
        return -(context.mask * nll).sum(axis=1), EmissionCache(cache, nll_cache, context.mask)

    def log_prob_vjp(self, params: Tree, cache: EmissionCache, dlogp: Array) -> tuple[Tree, Array, Array]:
        """(grads, dE, dz) from dlogp : (batch,)."""
        d = dlogp[:, None] * cache.mask  # d/d log p(x_t | z)
        backward = losses.cross_entropy_backward if self.output == "categorical" else losses.bernoulli_nll_backward
        dl = backward(cache.nll, -d)
        return self.logits_backward(params, cache.logits, dl)
