"""A continuous flow model: a standard normal base and a flow over vectors (Ziegler and Rush 2019).

    sampling:    eps ~ N(0, I),  x = f(eps)                                  (the flow's forward)
    likelihood:  log p(x) = log N(f^-1(x); 0, I) + log |det d f^-1(x) / dx|  (the flow's inverse)

the change of variables every normalizing flow rests on. The flow is a ``FlowStack`` (or any
``Chain`` of the layers of ``continuous.layers``) over vectors of ``dim`` entries, with no
conditioning input. Training minimises the mean negative log-likelihood, whose gradient is written
by hand: through the base, then back through the flow's ``inverse_vjp``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.bijection import Bijection
from mini_flows.checks import check_float, check_nonempty_batch, check_positive_int, check_shape
from mini_flows.continuous.scalar import AffineTransform, NLSqTransform
from mini_flows.continuous.stack import FlowStack
from mini_flows.nn.tree import ChecksParams, Tree, first_leaf

TRANSFORMS = ("affine", "nlsq")
KINDS = ("af", "iaf", "scf")
_LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(eps: Array) -> Array:
    """log N(eps; 0, I) : (batch,) in nats for eps : (batch, D), the base density:
    log N(eps; 0, I) = -|eps|^2 / 2 - (D / 2) log(2 pi). Its gradient in eps is -eps."""
    return -0.5 * (eps * eps).sum(axis=-1) - 0.5 * eps.shape[-1] * _LOG_2PI


class ModelCache(NamedTuple):
    """``log_prob_and_cache``'s cache for ``log_prob_vjp``: the flow's inverse cache and eps (batch, dim)."""

    flow: Any
    eps: Array


class ContinuousFlowModel(ChecksParams):
    """p(x) for real vectors x : (batch, dim), from the base N(0, I) and a flow f (base -> data).

    ``flow`` is a bijection over vectors (``event_ndim`` 1) of ``dim`` entries with no context, such
    as a ``FlowStack``. The base has no parameters, so the model's parameters are the flow's:
    ``params = model.init(rng, dtype)`` is {"layer0": ..., "layer1": ...} for a ``FlowStack``
    (layer0 next to the data), and every method takes them first, so autograd can differentiate
    ``log_prob`` and ``train.fit`` can train them. ``config``: the ``build_flow_model`` arguments
    that rebuild the model (``ContinuousFlowModel.from_config``), None for a model assembled by hand.

    Example: ``model = build_flow_model(2, 5, "nlsq")``, ``params = model.init(B.host_rng(0))``,
    ``model.log_prob(params, x)``.
    """

    def __init__(self, dim: int, flow: Bijection, config: dict[str, Any] | None = None):
        check_positive_int("dim", dim)
        if getattr(flow, "event_ndim", None) != 1:
            raise ValueError(f"flow must be a bijection of vectors (event_ndim 1), got {type(flow).__name__} with "
                             f"event_ndim {getattr(flow, 'event_ndim', None)}")
        if getattr(flow, "dim", dim) != dim:
            raise ValueError(f"flow has dim {flow.dim} but the model has dim {dim}")
        if getattr(flow, "cond_size", 0) != 0:
            raise ValueError(f"flow must take no context, got one with cond_size={flow.cond_size} (this model is a "
                             "density of x alone)")
        self.dim, self.flow, self.config = dim, flow, config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ContinuousFlowModel":
        """The model ``build_flow_model(**config)`` builds: rebuilds a model from its ``config``."""
        return build_flow_model(**config)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        """Fresh parameters from ``rng`` (a host generator, ``B.host_rng(seed)``) in float ``dtype``."""
        B.float_dtype(dtype)
        return self.flow.init(rng, dtype)

    def log_prob_and_cache(self, params: Tree, x: Array) -> tuple[Array, ModelCache]:
        """x (batch, dim) float -> log p(x) (batch,) in nats, and a cache for ``log_prob_vjp``.

        Raises ValueError for x of another shape or holding NaN or infinity, TypeError for x of
        another dtype than the parameters, and FlowRangeError (a ValueError) where the flow
        overflows (it names the point)."""
        self.check_params(params)
        check_float("x", x, like=first_leaf(params))
        check_shape("x", x, (None, self.dim))
        eps, logdet, cache = self.flow.inverse(params, x, check=False)
        return standard_normal_log_prob(eps) + logdet, ModelCache(cache, eps)

    def log_prob_vjp(self, params: Tree, cache: ModelCache, dlog_p: Array) -> Tree:
        """dlog_p (batch,) -> gradient tree mirroring ``params``, through the base and the flow."""
        deps = -dlog_p[:, None] * cache.eps  # d log N(eps) / d eps = -eps
        grads, _, _ = self.flow.inverse_vjp(params, cache.flow, deps, dlog_p)
        return grads

    def log_prob(self, params: Tree, x: Array) -> Array:
        """log p(x) : (batch,) in nats for x : (batch, dim) of the parameters' dtype (an empty batch
        gives an empty array)."""
        return self.log_prob_and_cache(params, x)[0]

    def loss_and_grads(self, params: Tree, x: Array) -> tuple[float, Tree]:
        """(mean negative log-likelihood in nats per example, its gradient tree) on x : (batch, dim),
        batch >= 1 (ValueError for an empty batch); the loss ``train.fit`` takes."""
        check_nonempty_batch("x", x)
        log_p, cache = self.log_prob_and_cache(params, x)
        batch = log_p.shape[0]
        dlog_p = B.xp().full((batch,), -1.0 / batch, dtype=log_p.dtype)
        return -float(log_p.mean()), self.log_prob_vjp(params, cache, dlog_p)

    def sample(self, params: Tree, n: int, seed: int | None = None) -> Array:
        """n points (n, dim) in the parameters' dtype: eps ~ N(0, I) (noise from ``B.rng(seed)``),
        then the flow forward."""
        check_positive_int("n", n)
        self.check_params(params)
        eps = B.rng(seed).standard_normal((n, self.dim), dtype=first_leaf(params).dtype)
        return self.flow.forward(params, eps, check=False)[0]


def build_flow_model(dim: int, num_layers: int, transform: str, kind: str = "af", hidden_sizes: Sequence[int] = (64,),
                     activation: str = "relu", alpha: float | None = None) -> ContinuousFlowModel:
    """A ``ContinuousFlowModel`` whose flow is a ``FlowStack`` of ``num_layers`` layers over vectors
    of ``dim`` entries; ``model.init(rng)`` draws its parameters.

    transform: every layer's scalar transform, "affine" (a + b x) or "nlsq" (a + b x + c / (1 +
    (d x + g)^2)); ``alpha`` in (0, 1) bounds NLSq's bump (None: 0.95, the paper's; "nlsq" only).
    kind: "af", "iaf" or "scf", the order reversed (or the halves swapped) between layers
    ("none", the elementwise layer, conditions on a context only, which this model has not).
    hidden_sizes and activation: every layer's MADE or coupling network. The model's ``config``
    holds these arguments, as JSON values.

    Example: ``build_flow_model(2, 5, "nlsq", hidden_sizes=(64,))`` is the 5-layer 2-D AF of
    Figure 5c.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose from {', '.join(map(repr, TRANSFORMS))}")
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; choose from {', '.join(map(repr, KINDS))} (a density model "
                         "of x alone has no context for the elementwise kind 'none')")
    if not isinstance(hidden_sizes, (list, tuple)):
        raise ValueError(f"hidden_sizes must be a list or tuple of layer sizes, got {hidden_sizes!r}")
    if transform == "affine" and alpha is not None:
        raise ValueError("alpha applies to transform='nlsq' only (it bounds NLSq's bump)")
    config = dict(dim=dim, num_layers=num_layers, transform=transform, kind=kind, hidden_sizes=list(hidden_sizes),
                  activation=activation, alpha=alpha)
    scalar = AffineTransform() if transform == "affine" else NLSqTransform(0.95 if alpha is None else alpha)
    flow = FlowStack(kind, dim, num_layers, scalar, hidden_sizes=tuple(hidden_sizes), activation=activation)
    return ContinuousFlowModel(dim, flow, config)
