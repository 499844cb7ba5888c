"""The sequence priors of section 4.3: flows over latents z of shape (batch, T, H).

Each time step is a layered flow in the hidden dimension (``FlowStack``: AF, SCF, or elementwise),
conditioned on a time context c_t from an LSTM and on the length encoding of supplement C:

    AF in time  (AF / AF, AF / SCF):  eps_t = g(z_t; c_t),  c_t = [LSTM(z_<t)_t, enc_t]
    IAF in time (IAF / SCF):          eps_t = g(z_t; c_t),  c_t = [LSTM(eps_<t)_t, enc_t]
    no flow in time (AF only):        eps_t = g(z_t; c_t),  c_t = enc_t

with g the hidden flow's ``inverse`` (data -> base). The prior is a ``Bijection`` (``mini_flows.bijection``)
between z and eps whose context is the batch's ``SequenceContext`` (``continuous.length``), or the
lengths it is built from. The LSTM reads the previous step's vector
(zero at t = 0), so c_t sees only earlier steps and the Jacobian d eps / d z is block lower
triangular (supplement A): log p(z) = sum_t [log N(eps_t; 0, I) + log|det d eps_t / d z_t|].
AF in time evaluates densities in parallel over t and samples one step after another; IAF in
time samples in parallel and evaluates densities one step after another.

Dropout (supplement D): ``log_prob_and_cache`` of an AF-in-time prior takes an optional mask m :
(batch, T, lstm_size) that multiplies the time LSTM's outputs, c_t = [LSTM(z_<t)_t * m_t, enc_t];
its backward pass applies the same mask.

Padding: steps t >= lengths[b] are padding. The map is the identity there (eps = z) with zero
log-det, the padded values never reach a real step, and ``log_prob`` sums real steps only.

Range: for finite input, inverse, forward, log_prob and sample return finite values or raise
FlowRangeError (a ValueError) naming the sequence and why: a scalar transform's result overflows the dtype (a far-out
z drives the networks to scales exp(log_b) beyond it), NLSq's inverse meets parameters outside
its accurate range, or log p(z) itself (|eps|^2 / 2) is not representable.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence, TypeVar

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.bijection import VJP, DirectedBijection, Result
from mini_flows.checks import check_float, check_positive_int, check_shape
from mini_flows.continuous.errors import FlowRangeError, raise_where
from mini_flows.continuous.length import SequenceContext, check_lengths, sequence_context
from mini_flows.continuous.scalar import AffineTransform, NLSqTransform
from mini_flows.continuous.stack import FlowStack
from mini_flows.nn.lstm import LSTM
from mini_flows.nn.tree import Tree, first_leaf, tree_add

TIME_KINDS = ("af", "iaf", "none")
HIDDEN_KINDS = ("af", "scf", "none")
PRIORS = ("af/af", "af/scf", "iaf/scf", "af/none", "none/af")
_LOG_2PI = math.log(2 * math.pi)
_Out = TypeVar("_Out")


class PriorCache(NamedTuple):
    """A direction's cache: the per-step caches (``steps``) and real : (batch, T), True at real steps."""

    steps: Any
    real: Array


class TimeCache(NamedTuple):
    """The time context's LSTM cache (None without flow in time), the hidden flow's cache and the
    dropout mask on the LSTM's outputs (or None), for all steps at once or for one step."""

    lstm: Any
    flow: Any
    dropout: Array | None = None


class LogProbCache(NamedTuple):
    """``log_prob_and_cache``'s cache: the inverse's cache and its output eps : (batch, T, H)."""

    inverse: PriorCache
    eps: Array


class SequencePrior(DirectedBijection):
    """p(z_{1:T} | T) as a flow from a standard normal eps, AF or IAF in time, a layered flow in hidden.

    Parameters
    ----------
    hidden_dim : H, the size of each z_t.
    time : "af" (context from z_<t), "iaf" (context from eps_<t) or "none" (no flow in time: each
        z_t is independent given its length encoding, Table 1's AF-only "unigram" row).
    hidden : "af", "scf" or "none" (an elementwise transform conditioned on time only).
    transform : an AffineTransform or NLSqTransform instance.
    num_layers : layers of the hidden flow.
    max_length : the largest sequence length (size of each one-hot length vector).
    lstm_size, lstm_layers : the time-context LSTM.
    hidden_sizes : hidden layers of each flow layer's MADE or MLP.

    Inputs: z, eps : (batch, T, H); the context of the Bijection protocol (``forward(params, eps,
    context)``, ``inverse(params, z, context)``, logdet : (batch,), dcontext None) is a
    ``SequenceContext`` of the batch (``sequence_context(lengths, T, max_length, dtype)``, the
    parameters' dtype) or the lengths : (batch,) integers in [1, min(T, max_length)] themselves.
    Parameters: {"lstm": ..., "flow": ...} ("lstm" absent when time is "none").
    """

    event_ndim = 2

    def __init__(self, hidden_dim: int, time: str = "af", hidden: str = "af", transform: Any = None,
                 num_layers: int = 5, max_length: int = 64, lstm_size: int = 64, lstm_layers: int = 1,
                 hidden_sizes: Sequence[int] = (64,), activation: str = "relu"):
        if time not in TIME_KINDS:
            raise ValueError(f"time must be one of {TIME_KINDS}, got {time!r}")
        if hidden not in HIDDEN_KINDS:
            raise ValueError(f"hidden must be one of {HIDDEN_KINDS}, got {hidden!r}")
        check_positive_int("hidden_dim", hidden_dim)
        check_positive_int("max_length", max_length)
        self.H, self.time, self.hidden, self.max_length = hidden_dim, time, hidden, max_length
        self.transform = NLSqTransform() if transform is None else transform
        self.lstm = LSTM(hidden_dim, lstm_size, lstm_layers) if time != "none" else None
        self.lstm_size = lstm_size if time != "none" else 0
        self.flow = FlowStack(hidden, hidden_dim, num_layers, self.transform, cond_size=self.lstm_size + 2 * max_length,
                              hidden_sizes=hidden_sizes, activation=activation)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        params = {"flow": self.flow.init(rng, dtype)}
        if self.lstm is not None:
            params["lstm"] = self.lstm.init(rng, dtype)
        return params

    # -- the bijection -------------------------------------------------------------------------

    def check_inputs(self, params: Tree, v: Array, context: SequenceContext | Array, direction: str) -> None:
        name = "eps" if direction == "forward" else "z"
        check_float(name, v, like=first_leaf(params))
        check_shape(name, v, (None, None, self.H))
        batch, T = v.shape[:2]
        if not isinstance(context, SequenceContext):
            check_lengths(B.asarray(context), batch, T, self.max_length)
            return
        check_lengths(context.lengths, batch, T, self.max_length)
        check_shape("context.encoding", context.encoding, (batch, T, 2 * self.max_length))
        if B.value(context.encoding).dtype != B.value(v).dtype:
            raise TypeError(f"context is {B.value(context.encoding).dtype} but {name} is {B.value(v).dtype}; "
                            "build it with sequence_context(..., dtype) of the parameters' dtype")

    def check_dropout(self, mask: Array | None = None, z: Array | None = None) -> None:
        """Raise ValueError unless the prior is AF in time (supplement D trains only those with
        dropout) and, where given, mask is a non-negative float array (batch, T, lstm_size) of z's dtype."""
        if self.time != "af":
            raise ValueError("dropout applies to the prior LSTM of AF-in-time models (supplement D); "
                             f"the {self.time}/{self.hidden} prior trains without it: pass dropout=0")
        if mask is not None:
            check_dropout_mask(mask, (z.shape[0], z.shape[1], self.lstm_size), like=z)

    # -- density and sampling ------------------------------------------------------------------

    def log_prob_and_cache(self, params: Tree, z: Array, context: SequenceContext | Array,
                           dropout_mask: Array | None = None, *, check: bool = True) -> tuple[Array, LogProbCache]:
        """log p(z | T) : (batch,) in nats, summed over real steps, and a cache for ``log_prob_vjp``.

        dropout_mask : (batch, T, lstm_size) multiplying the time LSTM's outputs (AF in time only),
        or None; always checked. z and the context are checked unless ``check`` is False (a caller
        that built both itself, as the latent model does every step). Raises FlowRangeError naming
        the sequence where log p(z | T) is not representable."""
        xp = B.xp()
        if check:
            self.check_inputs(params, z, context, "inverse")
        if dropout_mask is not None:
            dropout_mask = B.asarray(dropout_mask)
            self.check_dropout(dropout_mask, z)
        eps, logdet, cache = self._apply(params, z, context, "inverse", dropout_mask)
        base = -0.5 * (eps * eps).sum(axis=-1) - 0.5 * self.H * _LOG_2PI
        logp = xp.where(cache.real, base, 0.0).sum(axis=1) + logdet
        raise_where(~xp.isfinite(B.value(logp)),
                    f"SequencePrior.log_prob: log p(z) overflows {B.value(z).dtype} for a finite sequence of z (the flow "
                    "maps it so far into the tail that |eps|^2 / 2 is out of range); the first is the one",
                    {"max |z|": xp.abs(B.value(z)).max(axis=(1, 2)), "max |eps|": xp.abs(B.value(eps)).max(axis=(1, 2))})
        return logp, LogProbCache(cache, eps)

    def log_prob_vjp(self, params: Tree, cache: LogProbCache, dlogp: Array) -> tuple[Tree, Array]:
        """(grads, dz : (batch, T, H)) from dlogp : (batch,)."""
        deps = -cache.eps * (cache.inverse.real[..., None] * dlogp[:, None, None])
        grads, dz, _ = self.inverse_vjp(params, cache.inverse, deps, dlogp)
        return grads, dz

    def log_prob(self, params: Tree, z: Array, context: SequenceContext | Array) -> Array:
        """log p(z | T) : (batch,) for z : (batch, T, H) and its context (or lengths : (batch,))."""
        return self.log_prob_and_cache(params, z, context)[0]

    def sample(self, params: Tree, n: int, lengths: int | Array, seed: int | None) -> Array:
        """z : (n, max(lengths), H): eps ~ N(0, I), z = forward(eps); padded steps are 0.

        lengths : an int (every sequence that long) or (n,) integers.
        """
        check_positive_int("n", n)
        xp = B.xp()
        if isinstance(lengths, int) and not isinstance(lengths, bool):
            lengths = xp.full((n,), lengths)
        lengths = B.asarray(lengths)
        check_lengths(lengths, n, self.max_length, self.max_length)
        T = int(lengths.max())
        dtype = first_leaf(params).dtype
        context = sequence_context(lengths, T, self.max_length, dtype)
        eps = B.rng(seed).standard_normal((n, T, self.H), dtype=dtype)
        z, _, _ = self.forward(params, eps, context)
        return xp.where(context.real[..., None], z, 0.0)

    # -- machinery -----------------------------------------------------------------------------

    def _sequential_in(self, direction: str) -> bool:
        """Whether ``direction`` runs one step after another: AF in time samples (forward) so, IAF in
        time evaluates densities (inverse) so; everything else runs all steps at once."""
        return self.time == ("af" if direction == "forward" else "iaf")

    def _apply(self, params: Tree, x: Array, context: SequenceContext | Array, direction: str,
               dropout: Array | None = None) -> Result:
        """Run the hidden flow's ``direction`` on x : (batch, T, H) with padding replaced by 0:
        (y : (batch, T, H), logdet : (batch,), cache), identity and zero log-det on padding;
        FlowRangeError re-raised naming the sequence."""
        if not isinstance(context, SequenceContext):
            context = sequence_context(context, x.shape[1], self.max_length, B.value(x).dtype)
        real = context.real

        def compute() -> Result:
            xp = B.xp()
            x_real = xp.where(real[..., None], x, 0.0)
            if self._sequential_in(direction):
                y, logdet, steps = self._sequential(params, x_real, context.encoding, direction)
            else:
                y, logdet, steps = self._parallel(params, x_real, context.encoding, direction, dropout)
            y = xp.where(real[..., None], y, x)
            return y, xp.where(real, logdet, 0.0).sum(axis=1), PriorCache(steps, real)

        return _located(direction, "eps" if direction == "forward" else "z", x, compute)

    def _apply_vjp(self, params: Tree, cache: PriorCache, dy: Array, dlogdet: Array, direction: str) -> VJP:
        """(grads, dx, None) from dy : (batch, T, H) and dlogdet : (batch,)."""
        xp = B.xp()
        real = cache.real
        run = self._sequential_vjp if self._sequential_in(direction) else self._parallel_vjp
        grads, dx = run(params, cache.steps, dy * real[..., None], dlogdet[:, None] * real, direction)
        return grads, xp.where(real[..., None], dx, dy), None

    def _cond(self, h: Array, enc: Array) -> Array:
        return B.xp().concatenate([h, enc], axis=-1)

    def _hidden(self, params: Tree, x: Array, cond: Array, direction: str) -> Result:
        """The hidden flow's ``direction`` on x : (..., H) with context cond, unchecked."""
        return getattr(self.flow, direction)(params["flow"], x, cond, check=False)

    def _parallel(self, params: Tree, x: Array, enc: Array, direction: str, dropout: Array | None) -> Result:
        """All steps at once: the LSTM reads x shifted one step right (its outputs times the
        dropout mask, if any), y_t = g(x_t; c_t) with g the hidden flow's ``direction``. With no
        flow in time, c_t is the length encoding alone."""
        xp = B.xp()
        if self.lstm is None:
            y, logdet, flow_cache = self._hidden(params, x, enc, direction)
            return y, logdet, TimeCache(None, flow_cache)
        shifted = xp.concatenate([xp.zeros_like(B.value(x[:, :1])), x[:, :-1]], axis=1)
        (h, _), lstm_cache = self.lstm.forward(params["lstm"], shifted)
        if dropout is not None:
            h = h * dropout
        y, logdet, flow_cache = self._hidden(params, x, self._cond(h, enc), direction)
        return y, logdet, TimeCache(lstm_cache, flow_cache, dropout)

    def _parallel_vjp(self, params: Tree, cache: TimeCache, dy: Array, dlogdet: Array,
                      direction: str) -> tuple[Tree, Array]:
        xp = B.xp()
        flow_grads, dx, dcond = self.flow.vjp(direction)(params["flow"], cache.flow, dy, dlogdet)
        if self.lstm is None:
            return {"flow": flow_grads}, dx
        dh = dcond[..., : self.lstm_size]
        if cache.dropout is not None:
            dh = dh * cache.dropout
        lstm_grads, dshifted, _ = self.lstm.backward(params["lstm"], cache.lstm, dh)
        dx = dx + xp.concatenate([dshifted[:, 1:], xp.zeros_like(dshifted[:, :1])], axis=1)
        return {"lstm": lstm_grads, "flow": flow_grads}, dx

    def _sequential(self, params: Tree, x: Array, enc: Array, direction: str) -> Result:
        """One step after another: the LSTM reads the previous output y_{t-1}, y_t = g(x_t; c_t)."""
        xp = B.xp()
        y_prev = xp.zeros_like(B.value(x[:, 0]))
        state, ys, logdets, caches = None, [], [], []
        for t in range(x.shape[1]):
            (h, state), lstm_cache = self.lstm.forward(params["lstm"], y_prev[:, None, :], initial_state=state,
                                                        check=False)  # built here from checked inputs
            y_prev, logdet_t, flow_cache = self._hidden(params, x[:, t], self._cond(h[:, 0], enc[:, t]), direction)
            ys.append(y_prev)
            logdets.append(logdet_t)
            caches.append(TimeCache(lstm_cache, flow_cache))
        return xp.stack(ys, axis=1), xp.stack(logdets, axis=1), caches

    def _sequential_vjp(self, params: Tree, cache: list[TimeCache], dy: Array, dlogdet: Array,
                        direction: str) -> tuple[Tree, Array]:
        xp = B.xp()
        dx = xp.zeros_like(dy)
        dy_next = xp.zeros_like(dy[:, 0])  # reaches y_t through the LSTM input of step t + 1
        dstate, grads = None, None
        for t in reversed(range(dy.shape[1])):
            lstm_cache, flow_cache, _ = cache[t]
            flow_grads, dx_t, dcond = self.flow.vjp(direction)(params["flow"], flow_cache, dy[:, t] + dy_next,
                                                               dlogdet[:, t])
            dx[:, t] = dx_t
            lstm_grads, dstep, dstate = self.lstm.backward(params["lstm"], lstm_cache, dcond[:, None, : self.lstm_size],
                                                           d_final=dstate, check=False)
            dy_next = dstep[:, 0]
            step = {"lstm": lstm_grads, "flow": flow_grads}
            grads = step if grads is None else tree_add(grads, step)
        return grads, dx


def check_dropout_mask(mask: Array, shape: tuple[int, ...], like: Array) -> None:
    """Raise unless ``mask`` is a finite, non-negative float array of ``like``'s dtype and the given shape."""
    check_float("dropout_mask", mask, like=like)
    check_shape("dropout_mask", mask, shape)
    if bool(B.xp().any(B.value(mask) < 0)):
        raise ValueError("dropout_mask must be non-negative")


def _located(method: str, name: str, x: Array, compute: Callable[[], _Out]) -> _Out:
    """compute(), re-raising a FlowRangeError from inside the flow as one naming the sequence of x
    (x : (batch, T, H); every layer keeps the batch as the leading axis of its error's index)."""
    try:
        return compute()
    except FlowRangeError as err:
        b = err.index[0]
        top = float(B.xp().abs(B.value(x)[b]).max())
        raise FlowRangeError(f"SequencePrior.{method}: sequence {b} of {name} is finite (max |{name}| = {top:.3g} there) "
                             f"but leaves the range of {B.value(x).dtype} inside the flow: {err}", (b,)) from err


def build_prior(kind: str, hidden_dim: int, transform: str = "nlsq", num_layers: int | None = None,
                **config: Any) -> SequencePrior:
    """One of the paper's priors by name: "af/af", "af/scf", "iaf/scf", "none/af" (Table 1; the
    last is AF-only, no dependence across time) or "af/none" (Table 2's "- AF hidden"); transform
    "nlsq" or "affine" (Table 2's "- NLSq").

    num_layers defaults to supplement D's: 3 for IAF / SCF, 5 for the others. Other keywords go
    to SequencePrior (max_length, lstm_size, lstm_layers, hidden_sizes, activation).

    Example: ``prior = build_prior("af/scf", 8, max_length=20); params = prior.init(B.host_rng(0))``.
    """
    if kind not in PRIORS:
        raise ValueError(f"unknown prior {kind!r}; choose from {PRIORS}")
    transforms = {"nlsq": NLSqTransform, "affine": AffineTransform}
    if transform not in transforms:
        raise ValueError(f"unknown transform {transform!r}; choose from {sorted(transforms)}")
    time, hidden = kind.split("/")
    layers = num_layers if num_layers is not None else (3 if time == "iaf" else 5)
    return SequencePrior(hidden_dim, time, hidden, transforms[transform](), num_layers=layers, **config)
