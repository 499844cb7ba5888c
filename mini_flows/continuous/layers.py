"""Flow layers over a vector of H dimensions: AF, IAF, SCF and the elementwise (no flow across
hidden) layer, each with any scalar transform inside and an optional conditioning input.

Directions (paper section 3 and supplement B). Every layer is a ``Bijection`` (the protocol of
``mini_flows.bijection``) between data z and base eps, z, eps : (..., H), with a scalar transform f applied per dimension whose parameters
come from a network:

    inverse: data -> base, eps_h = f(z_h; theta_h)     (the closed-form ``formula``; density)
    forward: base -> data, z_h = f^-1(eps_h; theta_h)  (the ``solve``, a cubic for NLSq; sampling)

so training, which evaluates densities, never solves a cubic. log p(z) = log p(eps) + logdet of
``inverse``. The layers differ in what theta_h sees:

    AF    theta_h = MADE(z_<h, cond)      inverse parallel, forward sequential over h
    IAF   theta_h = MADE(eps_<h, cond)    forward parallel, inverse sequential over h
    SCF   theta_h = NN(z_S, cond) = NN(eps_S, cond) for h outside the kept half S, which passes
          through unchanged; both directions parallel
    Elementwise  theta_h = NN(cond)       no interaction across h; both directions parallel

IAF is an AF read backwards (``Inverse`` of an AF whose transform is f^-1). ``reverse=True`` reverses the autoregressive order (AF, IAF) or swaps the two halves (SCF), so
stacked layers alternate (see ``FlowStack``).

References: Papamakarios et al., Masked Autoregressive Flow for Density Estimation (2017);
Kingma et al., Improving Variational Inference with Inverse Autoregressive Flow (2016); Dinh et
al., Density estimation using Real NVP (2017); Ziegler and Rush, Latent Normalizing Flows for
Discrete Sequences (2019).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.bijection import VJP, DirectedBijection, Inverse, Result
from mini_flows.checks import check_float, check_positive_int, check_shape
from mini_flows.continuous.scalar import Swapped
from mini_flows.nn.mlp import MLP
from mini_flows.nn.made import MADE
from mini_flows.nn.tree import Tree, first_leaf, tree_add


INIT_OUTPUT_SCALE = 0.01
"""Each layer's conditioner starts with its output weights scaled by this factor (and zero output
biases), so every scalar transform starts close to the identity (a = 0, b = 1, c = 0, d = 1, g = 0).
With full-size random outputs, five stacked NLSq layers with unbounded scales b = exp(log b) can
map moderate inputs to 1e10 and beyond at initialisation, and training then diverges at step 0."""


def _near_identity(net_params: Tree) -> Tree:
    """The conditioner's parameters with its last layer's weights scaled by INIT_OUTPUT_SCALE."""
    last = list(net_params)[-1]
    out = dict(net_params)
    out[last] = {name: w * INIT_OUTPUT_SCALE if name.startswith("W") else w for name, w in net_params[last].items()}
    return out


def _spread(dlogdet: Array, shape: tuple[int, ...]) -> Array:
    """The gradient of logdet = sum_h logdet_h reaches every logdet_h unchanged: (...) -> shape."""
    return B.xp().broadcast_to(dlogdet[..., None], shape)


def _configure(layer: Any, dim: int, cond_size: int, transform: Any) -> None:
    """Validate and set ``layer.dim``, ``layer.cond_size`` and ``layer.transform``."""
    check_positive_int("dim", dim)
    check_positive_int("cond_size", cond_size, minimum=0)
    for method in ("formula", "formula_backward", "solve", "solve_backward"):
        if not hasattr(transform, method):
            raise TypeError(f"transform must be an AffineTransform or NLSqTransform, got {type(transform).__name__}")
    layer.dim, layer.cond_size, layer.transform = dim, cond_size, transform


class Flow(DirectedBijection):
    """A layer z <-> eps on vectors of ``dim`` entries, conditioned on ``cond`` (or nothing): the
    Bijection protocol with base eps, data z and context cond.

    Shape contract: z, eps : (..., dim); cond : (..., cond_size) with the same leading shape, or
    None when cond_size == 0; logdet : (...).

    Subclass requirements: call ``_configure(self, dim, cond_size, transform)`` (an
    AffineTransform or NLSqTransform) and implement ``init(rng, dtype) -> params``,
      ``_apply(params, x, cond, direction) -> (y, logdet : (...), cache)``
      ``_apply_vjp(params, cache, dy, dlogdet, direction) -> (grads, dx, dcond)``
    (``DirectedBijection`` routes forward, inverse and their VJPs to them)
    with the scalar transform's map and backward of that direction from ``_scalar(direction)``.
    """

    event_ndim = 1
    dim: int
    cond_size: int
    transform: Any

    def check_inputs(self, params: Tree, v: Array, context: Array | None, direction: str) -> None:
        """v : (..., dim) named eps (forward) or z (inverse), and cond : (..., cond_size) (None when
        cond_size is 0), of the parameters' float dtype."""
        name = "eps" if direction == "forward" else "z"
        like = first_leaf(params)
        check_float(name, v, like=like)
        lead = tuple(B.value(v).shape[:-1])
        check_shape(name, v, (*(None,) * len(lead), self.dim))
        if self.cond_size == 0:
            if context is not None:
                raise ValueError("cond must be None: this layer was built with cond_size=0")
            return
        if context is None:
            raise ValueError(f"cond is required: this layer was built with cond_size={self.cond_size}")
        check_float("cond", context, like=like)
        check_shape("cond", context, (*lead, self.cond_size))

    def _scalar(self, direction: str) -> tuple[Callable, Callable]:
        """The scalar transform's map and its backward in ``direction``: the closed-form formula
        (inverse, density) or the solve (forward, sampling)."""
        t = self.transform
        return (t.solve, t.solve_backward) if direction == "forward" else (t.formula, t.formula_backward)



class NetworkCache(NamedTuple):
    """A parallel pass: the conditioner network's cache and the scalar transform's."""

    net: Any
    op: Any


class StepCache(NamedTuple):
    """One step h of a sequential pass: the MADE call's cache and the scalar transform's at h."""

    h: int
    made: Any
    op: Any


class AF(Flow):
    """Autoregressive flow: eps_h = f(z_h; MADE(z_<h, cond)_h).

    inverse (density) is one parallel MADE call with the closed-form formula; forward (sampling)
    solves z_h = f^-1(eps_h; MADE(z_<h, cond)_h) for one h after another in the MADE order (``dim``
    MADE calls, each on the output built so far).

    Example: ``layer = AF(4, NLSqTransform(), cond_size=3); params = layer.init(B.host_rng(0))``.
    """

    def __init__(self, dim: int, transform: Any, cond_size: int = 0, hidden_sizes: Sequence[int] = (64,),
                 reverse: bool = False, activation: str = "relu"):
        _configure(self, dim, cond_size, transform)
        self.made = MADE(dim, tuple(hidden_sizes), transform.num_params, cond_size=cond_size,
                         order="reversed" if reverse else "forward", activation=activation)
        self.steps = sorted(range(dim), key=lambda h: self.made.order[h])

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"made": _near_identity(self.made.init(rng, dtype))}

    def _apply(self, params: Tree, x: Array, cond: Array | None, direction: str) -> Result:
        run = self._parallel if direction == "inverse" else self._sequential
        return run(params, x, cond, self._scalar(direction)[0])

    def _apply_vjp(self, params: Tree, cache: Any, dy: Array, dlogdet: Array, direction: str) -> VJP:
        run = self._parallel_vjp if direction == "inverse" else self._sequential_vjp
        return run(params, cache, dy, dlogdet, self._scalar(direction)[1])

    def _parallel(self, params: Tree, x: Array, cond: Array | None, op: Callable) -> Result:
        """y_h = op(theta_h(x_<h), x_h) for all h at once."""
        raw, made_cache = self.made.forward(params["made"], x, cond, check=False)
        (y, logdet), op_cache = op(raw, x, check=False)
        return y, logdet.sum(axis=-1), NetworkCache(made_cache, op_cache)

    def _parallel_vjp(self, params: Tree, cache: NetworkCache, dy: Array, dlogdet: Array, op_backward: Callable) -> VJP:
        draw, dx = op_backward(cache.op, dy, _spread(dlogdet, dy.shape))
        grads, dx_made, dcond = self.made.backward(params["made"], cache.net, draw)
        return {"made": grads}, dx + dx_made, dcond

    def _sequential(self, params: Tree, x: Array, cond: Array | None, op: Callable) -> Result:
        """y_h = op(theta_h(y_<h), x_h), one h at a time in the MADE order; entries of y not yet
        computed are 0, which the MADE masks hide from theta_h."""
        xp = B.xp()
        eye = xp.eye(self.dim, dtype=B.value(x).dtype)
        y, logdet, caches = xp.zeros_like(B.value(x)), 0.0, []
        for h in self.steps:
            raw, made_cache = self.made.forward(params["made"], y, cond, check=False)
            (y_h, logdet_h), op_cache = op(raw[..., h, :], x[..., h], check=False)
            y = y + y_h[..., None] * eye[h]
            logdet = logdet + logdet_h
            caches.append(StepCache(h, made_cache, op_cache))
        return y, logdet, caches

    def _sequential_vjp(self, params: Tree, caches: list[StepCache], dy: Array, dlogdet: Array,
                        op_backward: Callable) -> VJP:
        xp = B.xp()
        dy = dy.copy()
        dx = xp.zeros_like(dy)
        grads, dcond = None, None
        for h, made_cache, op_cache in reversed(caches):
            draw_h, dx_h = op_backward(op_cache, dy[..., h], dlogdet)
            dx[..., h] = dx_h
            draw = xp.zeros((*dy.shape, self.transform.num_params), dtype=dy.dtype)
            draw[..., h, :] = draw_h
            step_grads, dy_made, dcond_h = self.made.backward(params["made"], made_cache, draw)
            dy += dy_made
            grads = step_grads if grads is None else tree_add(grads, step_grads)
            if dcond_h is not None:
                dcond = dcond_h if dcond is None else dcond + dcond_h
        return {"made": grads}, dx, dcond


class IAF(Inverse):
    """Inverse autoregressive flow: z_h = f^-1(eps_h; MADE(eps_<h, cond)_h).

    forward (sampling) is one parallel MADE call on eps with the solve; inverse (density) computes
    eps_h = f(z_h; MADE(eps_<h, cond)_h) for one h after another with the formula. That is an AF
    read backwards: an AF over data eps and base z whose scalar transform is f^-1 (``Swapped``: its
    formula is f's solve, its solve f's formula), so IAF = Inverse(AF(dim, Swapped(transform))),
    running the same operations in the same order as a hand-written IAF, bit for bit. Parameters
    {"made": ...}, the AF's; ``made`` is its MADE.
    """

    def __init__(self, dim: int, transform: Any, cond_size: int = 0, hidden_sizes: Sequence[int] = (64,),
                 reverse: bool = False, activation: str = "relu"):
        _configure(self, dim, cond_size, transform)
        super().__init__(AF(dim, Swapped(transform), cond_size, hidden_sizes, reverse, activation))
        self.made = self.bijection.made

    check_inputs = Flow.check_inputs  # a layer's checks, naming eps and z by IAF's own directions


class SCF(Flow):
    """Split coupling flow: the kept half S passes through, eps_S = z_S, and for h outside S
    eps_h = f(z_h; NN(z_S, cond)_h) (inverse) or z_h = f^-1(eps_h; NN(eps_S, cond)_h) (forward).

    S is the first dim // 2 entries, or the rest when ``reverse``. The kept half reaches the
    output twice, by the identity and through the network, and its gradient takes both paths
    (detaching the second lets the scale run off to infinity).
    """

    def __init__(self, dim: int, transform: Any, cond_size: int = 0, hidden_sizes: Sequence[int] = (64,),
                 reverse: bool = False, activation: str = "relu"):
        _configure(self, dim, cond_size, transform)
        if dim < 2:
            raise ValueError(f"SCF needs dim >= 2 to split into two halves, got {dim}")
        first, second = slice(0, dim // 2), slice(dim // 2, dim)
        self.reverse = reverse
        self.kept, self.changed = (second, first) if reverse else (first, second)
        self.n_kept = len(range(dim)[self.kept])
        self.n_changed = dim - self.n_kept
        self.net = MLP(self.n_kept + cond_size, hidden_sizes, self.n_changed * transform.num_params, activation)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"net": _near_identity(self.net.init(rng, dtype))}

    def _join(self, kept: Array, changed: Array) -> Array:
        parts = [changed, kept] if self.reverse else [kept, changed]
        return B.xp().concatenate(parts, axis=-1)

    def _apply(self, params: Tree, x: Array, cond: Array | None, direction: str) -> Result:
        """y_S = x_S; y_h = op(NN(x_S, cond)_h, x_h) outside S, op the scalar transform's map in ``direction``."""
        xp = B.xp()
        kept = x[..., self.kept]
        net_in = kept if cond is None else xp.concatenate([kept, cond], axis=-1)
        out, net_cache = self.net.forward(params["net"], net_in, check=False)
        raw = out.reshape(*out.shape[:-1], self.n_changed, self.transform.num_params)
        (changed, logdet), op_cache = self._scalar(direction)[0](raw, x[..., self.changed], check=False)
        return self._join(kept, changed), logdet.sum(axis=-1), NetworkCache(net_cache, op_cache)

    def _apply_vjp(self, params: Tree, cache: NetworkCache, dy: Array, dlogdet: Array, direction: str) -> VJP:
        dy_changed = dy[..., self.changed]
        draw, dx_changed = self._scalar(direction)[1](cache.op, dy_changed, _spread(dlogdet, dy_changed.shape))
        grads, dnet_in = self.net.backward(params["net"], cache.net, draw.reshape(*draw.shape[:-2], -1))
        dx_kept = dy[..., self.kept] + dnet_in[..., : self.n_kept]  # identity path + network path
        dcond = None if self.cond_size == 0 else dnet_in[..., self.n_kept:]
        return {"net": grads}, self._join(dx_kept, dx_changed), dcond


class Elementwise(Flow):
    """No flow across hidden (the "- AF hidden" ablation of Table 2): eps_h = f(z_h; NN(cond)_h),
    each dimension on its own, conditioned on cond only (which must be given, cond_size >= 1)."""

    def __init__(self, dim: int, transform: Any, cond_size: int, hidden_sizes: Sequence[int] = (64,),
                 activation: str = "relu"):
        _configure(self, dim, cond_size, transform)
        check_positive_int("cond_size", cond_size)
        self.net = MLP(cond_size, hidden_sizes, dim * transform.num_params, activation)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"net": _near_identity(self.net.init(rng, dtype))}

    def _apply(self, params: Tree, x: Array, cond: Array, direction: str) -> Result:
        out, net_cache = self.net.forward(params["net"], cond, check=False)
        raw = out.reshape(*out.shape[:-1], self.dim, self.transform.num_params)
        (y, logdet), op_cache = self._scalar(direction)[0](raw, x, check=False)
        return y, logdet.sum(axis=-1), NetworkCache(net_cache, op_cache)

    def _apply_vjp(self, params: Tree, cache: NetworkCache, dy: Array, dlogdet: Array, direction: str) -> VJP:
        draw, dx = self._scalar(direction)[1](cache.op, dy, _spread(dlogdet, dy.shape))
        grads, dcond = self.net.backward(params["net"], cache.net, draw.reshape(*draw.shape[:-2], -1))
        return {"net": grads}, dx, dcond
