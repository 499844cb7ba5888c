"""Discrete autoregressive and bipartite flows (Tran et al. 2019, sections 3.2 and 3.3).

Direction convention (other implementations name it the other way round; this one follows the
paper and the rest of mini_flows):

    forward(x):  base -> data,    y_d = (mu_d + sigma_d x_d) mod K                (eq. 5)
    inverse(y):  data -> base,    x_d = sigma_d^-1 (y_d - mu_d) mod K

Both flows are ``Bijection``s (``mini_flows.bijection``) with no context and a zero log-det (a
bijection of a finite set moves probability mass without changing it). Training evaluates
log p(y) = log p_base(f^-1(y)) (section 3.3), so it runs ``inverse``; that direction returns a
cache and has a hand-written backward, ``inverse_vjp``. Sampling runs ``forward``, which is not
differentiable (``differentiable = ("inverse",)``) and returns no cache.

Values are one-hot arrays (batch, D, K); mu_d is one_hot(argmax(loc logits)) and sigma_d
one_hot(argmax(masked scale logits)) (eq. 6), so every step is exact and both directions are
bit-exact inverses. On the backward pass argmax is replaced by softmax(logits / tau), the
straight-through estimator (with the location logits shrunk to a bounded spread first, unless
``spread=None``: see ``straight_through.shrink_logits``), and the modular maps are bilinear in
their one-hot arguments, so the gradient reaches the location logits, the scale logits (through
the permutation sigma -> sigma^-1) and the input y.

The bound follows the fraction of training done (``straight_through.scheduled_spread``: in
effect the plain estimator at the start, narrowing to ``spread`` by half-way) where the loss is
told it: ``with_progress(model, batches, steps)`` gives ``train.fit`` a loss and batches that do
so, setting each flow's ``progress`` for the length of one loss call. Without it (a plain
``model.loss_and_grads``) the bound is ``spread`` throughout.

References: Tran, Vafa, Agrawal, Dinh, Poole. Discrete Flows: Invertible Generative Models of
Discrete Data. NeurIPS 2019.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.bijection import VJP, Bijection, Result
from mini_flows.checks import check_number, check_positive_int
from mini_flows.discrete.modular import inverse_location_scale, inverse_location_scale_vjp, location_scale
from mini_flows.discrete.one_hot import check_one_hot
from mini_flows.discrete.straight_through import (
    hard_one_hot,
    mask_scale_logits,
    mask_scale_logits_backward,
    one_hot_argmax,
    one_hot_argmax_backward,
    scheduled_spread,
    shrink_logits,
    shrink_logits_backward,
)
from mini_flows.nn.tree import Tree


SPREAD = 0.03
"""The flows' default ``spread``: the location logits the straight-through softmax sees keep a
root-mean-square spread below 0.03 sqrt(K) (``straight_through.shrink_logits``) from half-way
through training, and a wider one before (``straight_through.scheduled_spread``)."""


class MuSigmaCache(NamedTuple):
    """``_mu_sigma``'s cache: the network's, the straight-through argmaxes' (``mu`` holds the
    location logits as the softmax saw them), and ``shrink_logits``' (None without a spread)."""

    net: Any
    mu: Any
    sigma: Any
    shrink: Any = None


class InverseCache(NamedTuple):
    """An inverse's cache: the part of its input that eq. 5 maps, (batch, P, K) (all of y in the
    network's order, or a bipartite flow's moved positions), one-hot mu and sigma there (sigma None
    without scale) and their ``MuSigmaCache``."""

    y: Array
    mu: Array
    sigma: Array | None
    mu_sigma: MuSigmaCache


class DiscreteFlow(Bijection):
    """A location-scale flow whose (mu, sigma) come from a network (see ``networks``): the
    Bijection protocol on one-hot x, y : (batch, D, K), no context, logdet = 0 : (batch,).

    Subclass requirements: set ``self.network`` and ``self.tau`` (through ``__init__``) and
    implement

        _forward(params, x, None) -> (y, 0, None)          base -> data, not differentiable
        _inverse(params, y, None) -> (x, 0, cache)         data -> base
        inverse_vjp(params, cache, dx, dlogdet) -> (grads, dy, None)

    with ``inverse(params, forward(params, x)[0])[0] == x`` bit for bit, and ``grads`` mirroring
    ``init``'s tree {"network": ...}. ``progress``: the fraction of training done, which the
    straight-through surrogate's bound follows (``scheduled_spread``); None (the bound is
    ``spread``) except inside a loss call of ``with_progress``. ``_mu_sigma`` and
    ``_mu_sigma_backward`` give the shared network -> straight-through argmax step. The network
    follows the protocol of ``networks`` (attributes length, vocab_size, scale, autoregressive; a
    "bias" parameter, whose dtype the inputs must have).
    """

    event_ndim = 2
    differentiable = ("inverse",)

    def __init__(self, network: Any, tau: float = 0.1, spread: float | None = SPREAD):
        self.network, self.tau = network, check_number("tau", tau)
        self.spread = None if spread is None else check_number("spread", spread)
        self.progress: float | None = None
        self.length, self.vocab_size, self.scale = network.length, network.vocab_size, network.scale

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"network": self.network.init(rng, dtype)}

    def check_inputs(self, params: Tree, v: Array, context: None, direction: str) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__} takes no context, got {type(context).__name__}")
        check_one_hot("x" if direction == "forward" else "y", v, self.length, self.vocab_size,
                      like=params["network"]["bias"])

    @staticmethod
    def _zero_logdet(v: Array) -> Array:
        """log|det| = 0 : (batch,) for v : (batch, D, K)."""
        return B.xp().zeros(v.shape[:1], dtype=B.value(v).dtype)

    def _mu_sigma(self, params: Tree, h: Array,
                  positions: slice | None = None) -> tuple[Array, Array | None, MuSigmaCache]:
        """Network input h (batch, D, K) -> one-hot mu and sigma (batch, P, K) (eq. 6) at the
        given positions (all D when None; a bipartite network computes its logits there only)."""
        if positions is None:
            (loc, scale), net_cache = self.network.forward(params["network"], h)
        else:
            (loc, scale), net_cache = self.network.forward(params["network"], h, positions)
        shrink_cache = None
        if self.spread is not None:
            loc, shrink_cache = shrink_logits(loc, scheduled_spread(self.spread, self.progress))
        mu, mu_cache = one_hot_argmax(loc, self.tau)
        sigma = sigma_cache = None
        if self.scale:
            sigma, sigma_cache = one_hot_argmax(mask_scale_logits(scale), self.tau)
        return mu, sigma, MuSigmaCache(net_cache, mu_cache, sigma_cache, shrink_cache)

    def _location_scale(self, z: Array, loc: Array, scale: Array | None) -> Array:
        """Eq. 5 for sampling: y = (mu + sigma z) mod K, with mu and sigma the one-hot argmax of the
        logits as in ``_mu_sigma`` (eq. 6), so bit for bit the inverse's, but unchecked and with
        no straight-through cache. z, loc, scale : (..., K)."""
        sigma = None if scale is None else hard_one_hot(scale, scale=True)
        if self.spread is not None:
            loc = shrink_logits(loc, self.spread)[0]
        return location_scale(z, hard_one_hot(loc), sigma)

    def _mu_sigma_backward(self, params: Tree, cache: MuSigmaCache, dmu: Array,
                           dsigma: Array | None) -> tuple[Tree, Array]:
        net_cache, mu_cache, sigma_cache, shrink_cache = cache
        dloc = one_hot_argmax_backward(mu_cache, dmu)
        if shrink_cache is not None:
            dloc = shrink_logits_backward(shrink_cache, dloc)
        dscale = None
        if self.scale:
            dscale = mask_scale_logits_backward(self.vocab_size, one_hot_argmax_backward(sigma_cache, dsigma))
        grads, dh = self.network.backward(params["network"], net_cache, dloc, dscale)
        return {"network": grads}, dh


class DiscreteAutoregressiveFlow(DiscreteFlow):
    """y_d = (mu_d + sigma_d x_d) mod K with (mu_d, sigma_d) = network(y_<d)  (eq. 5).

    ``order="forward"``: mu_d, sigma_d depend on y_1..y_{d-1}; ``order="reversed"``: on
    y_{d+1}..y_D (the sequence is flipped around the network). The network must be autoregressive
    (``TransformerNet(causal=True)``, ``LSTMNet`` or ``MADENet``).

    forward (base -> data) is sequential: position d needs y_<d. With a network that has the
    incremental ``start``/``step`` of ``networks`` (``LSTMNet``, causal ``TransformerNet``) each
    position is one step on one position, reusing the earlier ones' work (the Transformer's step d
    attends to d cached keys); otherwise (``MADENet``) it is one full network call on y_<d padded
    with zeros, D full calls in all. A step sums in another order than the full call, so its
    logits equal those of ``inverse`` to round-off, not bit for bit: the round trip stays exact
    unless two logits of one position tie to within round-off (the round-trip tests draw networks,
    sizes and inputs at random and have met none).
    inverse (data -> base) is one parallel network call, since y is known.

    Inputs: x, y : (batch, D, K) one-hot of the parameters' dtype.
    Parameters: {"network": the network's tree}.
    """

    def __init__(self, network: Any, order: str = "forward", tau: float = 0.1, spread: float | None = SPREAD):
        if not network.autoregressive:
            raise ValueError(f"an autoregressive flow needs an autoregressive network, got {type(network).__name__}")
        if order not in ("forward", "reversed"):
            raise ValueError(f"order must be 'forward' or 'reversed', got {order!r}")
        super().__init__(network, tau, spread)
        self.order = order

    def _flip(self, v: Array) -> Array:
        return v[:, ::-1] if self.order == "reversed" else v

    def _forward(self, params: Tree, x: Array, context: None) -> Result:
        """Base -> data, position by position in the network's order: y_d from the y_<d filled in so far."""
        z = self._flip(x)
        fill = self._fill_by_steps if hasattr(self.network, "step") else self._fill_by_recomputation
        return self._flip(fill(params["network"], z)), self._zero_logdet(x), None

    def _fill_by_steps(self, net_params: Tree, z: Array) -> Array:
        """z (batch, D, K) in the network's order -> y (batch, D, K), one ``network.step`` per position."""
        xp = B.xp()
        state = self.network.start(net_params, z.shape[0])
        y_d = xp.zeros_like(z[:, 0])  # the network's shifted-in input at position 0
        ys: list[Array] = []
        for d in range(self.length):
            (loc, scale), state = self.network.step(net_params, state, y_d, d)
            y_d = self._location_scale(z[:, d], loc, scale)
            ys.append(y_d)
        return xp.stack(ys, axis=1)

    def _fill_by_recomputation(self, net_params: Tree, z: Array) -> Array:
        """As ``_fill_by_steps`` for networks without ``step``: position d reads the full network
        output on y_<d padded with zeros."""
        xp = B.xp()
        batch, D, K = z.shape
        ys: list[Array] = []
        for d in range(D):
            rest = xp.zeros((batch, D - d, K), dtype=z.dtype)
            partial = xp.concatenate([xp.stack(ys, axis=1), rest], axis=1) if ys else rest
            (loc, scale), _ = self.network.forward(net_params, partial)
            ys.append(self._location_scale(z[:, d], loc[:, d], None if scale is None else scale[:, d]))
        return xp.stack(ys, axis=1)

    def _inverse(self, params: Tree, y: Array, context: None) -> Result:
        """Data -> base in one network call: x = sigma^-1 (y - mu) mod K with mu, sigma = network(y)."""
        z = self._flip(y)
        mu, sigma, cache = self._mu_sigma(params, z)
        return self._flip(inverse_location_scale(z, mu, sigma)), self._zero_logdet(y), InverseCache(z, mu, sigma, cache)

    def inverse_vjp(self, params: Tree, cache: InverseCache, dx: Array, dlogdet: Array) -> VJP:
        """dx (batch, D, K) -> (grads, dy, None): through eq. 5's inverse, the straight-through
        argmax and the network (dlogdet reaches nothing: the log-det is constant)."""
        z, mu, sigma, net_cache = cache
        dz, dmu, dsigma = inverse_location_scale_vjp(z, mu, sigma, self._flip(dx))
        grads, dz_net = self._mu_sigma_backward(params, net_cache, dmu, dsigma)
        return grads, self._flip(dz + dz_net), None


class DiscreteBipartiteFlow(DiscreteFlow):
    """Coupling flow: kept positions pass through, the others get eq. 5 with (mu, sigma) from the kept ones.

        y_d = x_d                                           for kept d (mu = 0, sigma = 1),
        y_d = (mu_d + sigma_d x_d) mod K,  mu, sigma = network(m . x)   otherwise,

    where m is the 0/1 mask of kept positions: ``keep="even"`` keeps d = 0, 2, 4, ... (0-based),
    ``keep="odd"`` keeps d = 1, 3, .... Since m . x = m . y, both directions are one parallel
    network call. The network must be bipartite (``TransformerNet(causal=False)`` or ``MLPNet``);
    only the transformed positions (``self.moved``) go through the modular maps, and the kept
    ones (``self.kept``) are copied.

    Inputs: x, y : (batch, D, K) one-hot of the parameters' dtype.
    Parameters: {"network": the network's tree}.
    """

    def __init__(self, network: Any, keep: str = "even", tau: float = 0.1, spread: float | None = SPREAD):
        if network.autoregressive:
            raise ValueError(f"a bipartite flow needs a bipartite network, got an autoregressive {type(network).__name__}")
        if keep not in ("even", "odd"):
            raise ValueError(f"keep must be 'even' or 'odd', got {keep!r}")
        super().__init__(network, tau, spread)
        self.keep = keep
        evens, odds = slice(0, None, 2), slice(1, None, 2)
        self.kept, self.moved = (evens, odds) if keep == "even" else (odds, evens)
        self._masks: dict[Any, Array] = {}

    def _mask(self, dtype: Any) -> Array:
        """m : (D, 1), 1.0 at kept positions; built once per dtype (and backend)."""
        key = (B.get_backend(), str(dtype))
        if key not in self._masks:
            self._masks[key] = B.asarray([[float(d % 2 == (self.keep == "odd"))] for d in range(self.length)], dtype)
        return self._masks[key]

    def _join(self, kept: Array, moved: Array) -> Array:
        """(batch, |kept|, K) and (batch, |moved|, K) -> (batch, D, K) in position order: the two
        interleaved by one stack and a reshape (the even positions one longer when D is odd)."""
        xp = B.xp()
        evens, odds = (kept, moved) if self.keep == "even" else (moved, kept)
        batch, n, K = odds.shape
        pairs = xp.stack([evens[:, :n], odds], axis=2).reshape(batch, 2 * n, K)
        return pairs if evens.shape[1] == n else xp.concatenate([pairs, evens[:, n:]], axis=1)

    def _forward(self, params: Tree, x: Array, context: None) -> Result:
        """Base -> data in one network call."""
        (loc, scale), _ = self.network.forward(params["network"], self._mask(x.dtype) * x, self.moved)
        y_moved = self._location_scale(x[:, self.moved], loc, scale)
        return self._join(x[:, self.kept], y_moved), self._zero_logdet(x), None

    def _inverse(self, params: Tree, y: Array, context: None) -> Result:
        """Data -> base in one network call."""
        mu, sigma, cache = self._mu_sigma(params, self._mask(B.value(y).dtype) * y, self.moved)
        y_moved = y[:, self.moved]
        x = self._join(y[:, self.kept], inverse_location_scale(y_moved, mu, sigma))
        return x, self._zero_logdet(y), InverseCache(y_moved, mu, sigma, cache)

    def inverse_vjp(self, params: Tree, cache: InverseCache, dx: Array, dlogdet: Array) -> VJP:
        """dx (batch, D, K) -> (grads, dy, None)."""
        y_moved, mu, sigma, net_cache = cache
        dy_moved, dmu, dsigma = inverse_location_scale_vjp(y_moved, mu, sigma, dx[:, self.moved])
        grads, dh = self._mu_sigma_backward(params, net_cache, dmu, dsigma)
        return grads, self._join(dx[:, self.kept] + dh[:, self.kept], dy_moved), None


def with_progress(model: Any, batches: Callable[[int], Any],
                  steps: int) -> tuple[Callable[[Tree, Any], tuple], Callable[[int], tuple[Any, float]]]:
    """``train.fit``'s loss and batches for ``steps`` steps of a discrete flow model whose flows'
    straight-through bound follows the fraction of training done (``scheduled_spread``):

        loss, batches = with_progress(model, batch_at, steps)
        params, history = fit(loss, params, batches, steps, ...)

    Batch ``step`` is (batch_at(step), step / steps); the loss is ``model.loss_and_grads(params,
    batch)`` run with every flow's ``progress`` set to step / steps, and None again after the call,
    so the model holds no progress between steps. ``model``: a ``DiscreteFlowModel`` (anything
    with ``flows`` and ``loss_and_grads``); ``batches``: a function of the step (0-based).
    """
    check_positive_int("steps", steps)

    def loss_and_grads(params: Tree, batch_and_progress: tuple[Any, float]) -> tuple:
        batch, progress = batch_and_progress
        for flow in model.flows:
            flow.progress = progress
        try:
            return model.loss_and_grads(params, batch)
        finally:
            for flow in model.flows:
                flow.progress = None

    return loss_and_grads, lambda step: (batches(step), step / steps)
