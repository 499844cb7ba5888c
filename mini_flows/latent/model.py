"""The latent flow model for discrete sequences (Ziegler and Rush 2019, sections 4.1 and 5).

Generative model (supplement C):  T ~ p(T),  eps ~ N(0, I),  z = f(eps; T),  x_t ~ p(x_t | z, T),

    p(x) = p(T) integral p(z | T) prod_t p(x_t | z, T) dz,

with p(z | T) one of the sequence priors (AF / AF, AF / SCF, IAF / SCF, or Table 2's ablations),
trained with the inference network q(z | x) on the ELBO estimated with S reparameterised samples
z_s = mu + s * noise_s:

    rec = 1/S sum_s log p(x | z_s, T)
    kl  = 1/S sum_s [log q(z_s | x) - log p(z_s | T)]          (single-sample MC estimates)
    ELBO = rec - kl  <=  log p(x | T)  <=  log-mean-exp_s [log p(x | z_s) + log p(z_s) - log q(z_s | x)]

The right-hand side is the importance-sampled estimate of section 6 (q as proposal); on the
same samples it is never below the ELBO estimate (Jensen). Gradients come from the hand-written
backward passes of the inference network, the reparameterisation, the prior and the emission.

Training loss (one batch): L = -sum_b (rec_b - w kl_b) / sum_b T_b, the negative annealed ELBO per
real token, w the KL weight.

Shapes: x : (batch, T) integers in [0, K) ("categorical") or (batch, T, K) of 0/1 ("bernoulli");
lengths : (batch,) integers in [1, min(T, max_length)]; noise : (S, batch, T, H). Padded steps
(t >= lengths[b]) may hold anything (any integer, any 0/1 or float): they never change a score.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import (
    check_float,
    check_nonempty_batch,
    check_number,
    check_positive_int,
    check_shape,
    check_tokens,
)
from mini_flows.continuous.length import SequenceContext, check_lengths, sequence_context
from mini_flows.continuous.priors import LogProbCache, build_prior
from mini_flows.latent.config import OUTPUTS, ConfiguredModel, LatentConfig
from mini_flows.latent.emission import Emission, EmissionCache, draw
from mini_flows.latent.inference import InferenceCache, InferenceNetwork, log_q, reparameterise
from mini_flows.nn import init
from mini_flows.nn.tree import Tree


class Inputs(NamedTuple):
    """A validated batch on the backend: x with padding replaced by 0 (in the parameters' dtype for
    bernoulli), its context, noise : (S, batch, T, H) and the dropout mask (or None)."""

    x: Array
    context: SequenceContext
    noise: Array
    dropout_mask: Array | None


class ElboCache(NamedTuple):
    """What ``elbo_and_grads`` needs from the forward pass: the inference network's cache, logvar :
    (batch, T, H), the prior's and the emission's caches (over the S batch samples)."""

    inference: InferenceCache
    logvar: Array
    prior: LogProbCache
    emission: EmissionCache


class LatentFlowModel(ConfiguredModel):
    """p(T) p(z | T) prod_t p(x_t | z, T) with an inference network q(z | x), built from a
    ``LatentConfig`` (its fields are documented there).

    Parameters tree: {"embed": {"E": (K, embed_size)}, "inference": ..., "prior": ..., "emission":
    ...}: the embedding is held once and shared by the inference network (its input) and the
    emission (its tied output weights), so its gradient is the sum of both uses. The length prior
    p(T) (not trained by gradient), ``config`` (JSON values, p(T)'s counts included) and
    ``from_config`` are ``ConfiguredModel``'s.

    Example
    -------
    >>> model = LatentFlowModel(LatentConfig(5, max_length=4, prior="af/scf", latent_dim=2, embed_size=3,
    ...                                      hidden_size=3))
    >>> params = model.init(B.host_rng(0))
    >>> noise = B.rng(1).standard_normal((2, 1, 4, 2))
    >>> rec, kl, grads = model.elbo_and_grads(params, B.asarray([[0, 1, 2, 3]]), B.asarray([4]), noise)
    """

    config_type = LatentConfig

    def __init__(self, config: LatentConfig):
        if config.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {config.output!r}")
        check_positive_int("vocab_size", config.vocab_size)
        check_positive_int("hidden_size", config.hidden_size)
        self.K, self.max_length, self.output, self.H = (
            config.vocab_size, config.max_length, config.output, config.latent_dim)
        self.inference = InferenceNetwork(config)
        self.prior = build_prior(config.prior, config.latent_dim, config.transform, num_layers=config.flow_layers,
                                 max_length=config.max_length, lstm_size=config.prior_lstm_size or config.hidden_size,
                                 lstm_layers=config.num_layers, hidden_sizes=config.flow_hidden_sizes,
                                 activation=config.activation)
        self.emission = Emission(config)
        super().__init__(config)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        embed_size = self.hparams.embed_size
        E = init.normal(rng, (self.K, embed_size), 1.0 / embed_size**0.5, dtype)
        return {"embed": {"E": E}, "inference": self.inference.init(rng, dtype), "prior": self.prior.init(rng, dtype),
                "emission": self.emission.init(rng, dtype)}

    # -- the ELBO and its gradient -------------------------------------------------------------

    def _prepare(self, params: Tree, x: Array, lengths: Array, noise: Array,
                 dropout_mask: Array | None = None) -> Inputs:
        """Validate (the dropout mask is the prior's to check) and move to the backend."""
        self.check_params(params)
        xp = B.xp()
        E = params["embed"]["E"]
        x, lengths, noise = B.asarray(x), B.asarray(lengths), B.asarray(noise)
        if self.output == "categorical":
            if not B.is_integer(x):
                raise TypeError(f"x must be an integer array of tokens, got {x.dtype}")
            check_shape("x", x, (None, None))
        else:
            check_shape("x", x, (None, None, self.K))
        batch, T = x.shape[:2]
        if T < 1:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        check_lengths(lengths, batch, T, self.max_length)
        context = sequence_context(lengths, T, self.max_length, B.value(E).dtype)
        check_float("noise", noise, like=E)
        check_shape("noise", noise, (None, batch, T, self.H))
        if noise.shape[0] < 1:
            raise ValueError("noise must hold at least one sample (S >= 1)")
        if self.output == "categorical":
            x = xp.where(context.real, x, 0)
            check_tokens("x", x, self.K)
        else:
            x = xp.where(context.real[..., None], x, 0)
            if not bool(xp.all((x == 0) | (x == 1))):
                raise ValueError("x must hold only 0 and 1 at real steps (a piano roll)")
            x = x.astype(B.value(E).dtype)
        return Inputs(x, context, noise, dropout_mask)

    def _forward(self, params: Tree, inputs: Inputs) -> tuple[tuple[Array, Array, Array], ElboCache]:
        """(rec_s, logq_s, logp_s), each (S, batch), on validated inputs; the same code runs on autograd."""
        xp = B.xp()
        x, context, noise, dropout_mask = inputs
        S, batch, T, H = noise.shape
        E = params["embed"]["E"]
        (mu, logvar), inference_cache = self.inference.forward(params["inference"], E, x, context)
        z = reparameterise(mu, logvar, noise).reshape(S * batch, T, H)
        context_s = context.repeat(S)  # sample-major, like z
        x_s = xp.broadcast_to(x[None], (S, *x.shape)).reshape(S * batch, *x.shape[1:])
        # z and context_s are built here from inputs _prepare checked: the prior need not check them again
        logp, prior_cache = self.prior.log_prob_and_cache(params["prior"], z, context_s, dropout_mask, check=False)
        rec, emission_cache = self.emission.log_prob_and_cache(params["emission"], E, z, x_s, context_s)
        terms = (rec.reshape(S, batch), log_q(logvar, noise, context.real), logp.reshape(S, batch))
        return terms, ElboCache(inference_cache, logvar, prior_cache, emission_cache)

    def loss(self, params: Tree, x: Array, lengths: Array, noise: Array, kl_weight: float = 1.0,
             dropout_mask: Array | None = None) -> Array:
        """L = -sum_b (rec_b - kl_weight kl_b) / sum_b T_b, the scalar that ``elbo_and_grads`` differentiates."""
        _check_kl_weight(kl_weight)
        inputs = self._prepare(params, x, lengths, noise, dropout_mask)
        (rec, logq, logp), _ = self._forward(params, inputs)
        per_sequence = (rec - kl_weight * (logq - logp)).mean(axis=0)
        return -per_sequence.sum() / float(B.value(inputs.context.lengths).sum())

    def elbo_and_grads(self, params: Tree, x: Array, lengths: Array, noise: Array, kl_weight: float = 1.0,
                       dropout_mask: Array | None = None) -> tuple[Array, Array, Tree]:
        """ELBO terms and the gradient of the training loss, all by hand-written backward passes.

        Returns rec : (batch,), kl : (batch,) in nats (MC averages over the S samples of noise),
        and grads, the tree of d L / d params for L = ``loss(...)``. dropout_mask : (S batch, T,
        prior_lstm_size) from ``dropout.dropout_mask`` for AF-in-time priors, or None.
        """
        _check_kl_weight(kl_weight)
        check_nonempty_batch("x", x)
        inputs = self._prepare(params, x, lengths, noise, dropout_mask)
        (rec_s, logq, logp), cache = self._forward(params, inputs)
        real, noise = inputs.context.real, inputs.noise
        S, batch, T, H = noise.shape
        scale = 1.0 / (S * float(inputs.context.lengths.sum()))
        d_rec = B.xp().full((S * batch,), -scale, dtype=rec_s.dtype)  # dL / d rec_s
        emission_grads, dE_emission, dz = self.emission.log_prob_vjp(params["emission"], cache.emission, d_rec)
        prior_grads, dz_prior = self.prior.log_prob_vjp(params["prior"], cache.prior, kl_weight * d_rec)
        dz = (dz + dz_prior).reshape(S, batch, T, H)
        # z = mu + exp(logvar / 2) noise, and log q = -1/2 sum (noise^2 + logvar + log 2 pi) over real steps
        dmu = dz.sum(axis=0)
        dlogq = kl_weight * scale  # dL / d log q(z_s | x), the same for every s
        dlogvar = 0.5 * B.xp().exp(0.5 * cache.logvar) * (dz * noise).sum(axis=0) \
            - 0.5 * S * dlogq * real[..., None].astype(cache.logvar.dtype)  # (a bool mask would promote to float64)
        inference_grads, dE_inference = self.inference.backward(params["inference"], cache.inference, dmu, dlogvar)
        grads = {"embed": {"E": dE_inference + dE_emission}, "inference": inference_grads, "prior": prior_grads,
                 "emission": emission_grads}
        return rec_s.mean(axis=0), (logq - logp).mean(axis=0), grads

    # -- evaluation ----------------------------------------------------------------------------

    def sample_terms(self, params: Tree, x: Array, lengths: Array, noise: Array) -> tuple[Array, Array]:
        """Per-sample terms (rec_s, kl_s), each (S, batch) in nats: log p(x | z_s, T) and
        log q(z_s | x) - log p(z_s | T). Their difference is the log importance weight."""
        (rec, logq, logp), _ = self._forward(params, self._prepare(params, x, lengths, noise))
        return rec, logq - logp

    def elbo(self, params: Tree, x: Array, lengths: Array, noise: Array) -> tuple[Array, Array]:
        """(rec, kl), each (batch,): the ELBO estimate is rec - kl <= log p(x | T) in expectation."""
        rec, kl = self.sample_terms(params, x, lengths, noise)
        return rec.mean(axis=0), kl.mean(axis=0)

    def importance_sampled_log_likelihood(self, params: Tree, x: Array, lengths: Array, noise: Array) -> Array:
        """log p(x | T) ~ log (1/S) sum_s p(x | z_s) p(z_s) / q(z_s | x), z_s ~ q : (batch,) in nats."""
        rec, kl = self.sample_terms(params, x, lengths, noise)
        return log_mean_exp(rec - kl, axis=0)

    def log_likelihood(self, params: Tree, x: Array, lengths: Array, noise: Array) -> Array:
        """log p(x) = log p(x | T) + log p(T) : (batch,) in nats, the first term importance sampled."""
        log_px = self.importance_sampled_log_likelihood(params, x, lengths, noise)
        return log_px + self.length_prior.log_prob(lengths).astype(B.value(log_px).dtype)

    # -- generation ----------------------------------------------------------------------------

    def sample(self, params: Tree, n: int, seed: int | None = None, lengths: Array | None = None,
               greedy: bool = False) -> tuple[Array, Array]:
        """Generate n sequences: T ~ p(T) (unless lengths : (n,) is given), eps ~ N(0, I),
        z = f(eps; T) by the prior's forward (parallel in time for IAF), then x_t ~ p(x_t | z, T)
        independently for every t (or its mode when ``greedy``). Every random number comes from
        ``B.rng(seed)`` (None: fresh entropy). The arguments ``(params, n, seed)`` are those of every
        model's ``sample`` (``LSTMBaseline``, ``DiscreteFlowModel``); ``lengths`` and ``greedy`` are
        this model's own.

        Returns (x, lengths), as the baseline's does (a ``DiscreteFlowModel``, of fixed length,
        returns its tokens alone): x : (n, max T) integer tokens or (n, max T, K) 0/1 floats, 0 at
        padding; lengths : (n,) integers.
        """
        xp = B.xp()
        rng, context = self.generation_start(params, n, seed, lengths)
        lengths, T = context.lengths, context.real.shape[1]
        E = params["embed"]["E"]
        eps = rng.standard_normal((n, T, self.H), dtype=B.value(E).dtype)
        z, _, _ = self.prior.forward(params["prior"], eps, context)
        logits, _ = self.emission.logits_forward(params["emission"], E, z, context)
        real = context.real
        u = rng.random(logits.shape[:-1] if self.output == "categorical" else logits.shape)
        if self.output == "categorical":
            return xp.where(real, logits.argmax(axis=-1) if greedy else draw(logits, u, self.output), 0), lengths
        on = logits > 0 if greedy else draw(logits, u, self.output)
        return (on & real[..., None]).astype(B.value(E).dtype), lengths


def _check_kl_weight(w: Any) -> None:
    check_number("kl_weight", w, positive=False)


def log_mean_exp(a: Array, axis: int = 0) -> Array:
    """log (1/n) sum exp(a) along ``axis``, shifted by the max so it never overflows; a : (..., n, ...)
    -> a without ``axis``. Where every entry is -inf the result is -inf (the mean of zeros), where
    one is +inf it is +inf, and NaN stays NaN."""
    xp = B.xp()
    top = B.value(a).max(axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(top), top, 0)  # a constant for the gradient: it cancels
    mean = xp.exp(a - shift).mean(axis=axis, keepdims=True)
    zero = B.value(mean) == 0  # every entry -inf: log 0 without the warning
    return (shift + xp.where(zero, -xp.inf, xp.log(xp.where(zero, 1, mean)))).squeeze(axis)
