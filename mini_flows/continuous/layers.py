"""Flow layers over a vector of H dimensions: AF, IAF, SCF and the elementwise (no flow across
hidden) layer, each with any scalar transform inside and an optional conditioning input.

Directions (paper section 3 and supplement B). Every layer is a bijection between data z and
base eps, z, eps : (..., H), with a scalar transform f applied per dimension whose parameters
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

``reverse=True`` reverses the autoregressive order (AF, IAF) or swaps the two halves (SCF), so
stacked layers alternate (see ``FlowStack``).

References: Papamakarios et al., Masked Autoregressive Flow for Density Estimation (2017);
Kingma et al., Improving Variational Inference with Inverse Autoregressive Flow (2016); Dinh et
al., Density estimation using Real NVP (2017); Ziegler and Rush, Latent Normalizing Flows for
Discrete Sequences (2019).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_positive_int, check_shape
from mini_flows.nn.mlp import MLP
from mini_flows.nn.made import MADE
from mini_flows.nn.tree import Tree, tree_add

Result = tuple[tuple[Array, Array], Any]
Grads = tuple[Tree, Array, Array | None]


def first_param(params: Tree) -> Array:
    """One parameter array (unboxed), whose dtype the inputs must share."""
    leaf = B.value(params)
    while isinstance(leaf, dict):
        leaf = B.value(next(iter(leaf.values())))
    return leaf


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


class Flow:
    """A bijection z <-> eps on vectors of ``dim`` entries, conditioned on ``cond`` (or nothing).

    Shape contract: z, eps : (..., dim); cond : (..., cond_size) with the same leading shape, or
    None when cond_size == 0; logdet : (...).

    Subclass requirements: set ``self.dim``, ``self.cond_size`` and ``self.transform`` (an
    AffineTransform or NLSqTransform), and implement
      ``init(rng, dtype) -> params``
      ``_inverse(params, z, cond) -> ((eps, logdet), cache)`` with logdet = log|det d eps / d z|
      ``_forward(params, eps, cond) -> ((z, logdet), cache)`` with logdet = log|det d z / d eps|
      ``inverse_backward(params, cache, deps, dlogdet) -> (grads, dz, dcond)``
      ``forward_backward(params, cache, dz, dlogdet) -> (grads, deps, dcond)``
    where grads mirrors params and dcond is None when cond is None. The public ``inverse`` and
    ``forward`` validate their inputs and call the underscored methods.
    """

    dim: int
    cond_size: int
    transform: Any

    def inverse(self, params: Tree, z: Array, cond: Array | None = None) -> Result:
        """Data -> base (density direction): ((eps, log|det d eps/d z|), cache)."""
        self._check(params, "z", z, cond)
        return self._inverse(params, z, cond)

    def forward(self, params: Tree, eps: Array, cond: Array | None = None) -> Result:
        """Base -> data (sampling direction): ((z, log|det d z/d eps|), cache)."""
        self._check(params, "eps", eps, cond)
        return self._forward(params, eps, cond)

    def _check(self, params: Tree, name: str, x: Array, cond: Array | None) -> None:
        like = first_param(params)
        check_float(name, x, like=like)
        lead = tuple(B.value(x).shape[:-1])
        check_shape(name, x, (*(None,) * len(lead), self.dim))
        if self.cond_size == 0:
            if cond is not None:
                raise ValueError("cond must be None: this layer was built with cond_size=0")
            return
        if cond is None:
            raise ValueError(f"cond is required: this layer was built with cond_size={self.cond_size}")
        check_float("cond", cond, like=like)
        check_shape("cond", cond, (*lead, self.cond_size))

    def _check_config(self, dim: int, cond_size: int, transform: Any) -> None:
        check_positive_int("dim", dim)
        check_positive_int("cond_size", cond_size, minimum=0)
        for method in ("formula", "formula_backward", "solve", "solve_backward"):
            if not hasattr(transform, method):
                raise TypeError(f"transform must be an AffineTransform or NLSqTransform, got {type(transform).__name__}")
        self.dim, self.cond_size, self.transform = dim, cond_size, transform


class _Autoregressive(Flow):
    """Shared machinery of AF and IAF: a MADE gives theta_h from the entries of one side that come
    before h in the order. Where that side is the input the layer runs in parallel; where it is
    the output, the output is built one dimension at a time (``dim`` MADE calls)."""

    def __init__(self, dim: int, transform: Any, cond_size: int = 0, hidden_sizes: Sequence[int] = (64,),
                 reverse: bool = False, activation: str = "relu"):
        self._check_config(dim, cond_size, transform)
        self.made = MADE(dim, tuple(hidden_sizes), transform.num_params, cond_size=cond_size,
                         order="reversed" if reverse else "forward", activation=activation)
        self.steps = sorted(range(dim), key=lambda h: self.made.order[h])

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"made": _near_identity(self.made.init(rng, dtype))}

    def _parallel(self, params: Tree, x: Array, cond: Array | None, op: Callable) -> Result:
        """y_h = op(theta_h(x_<h), x_h) for all h at once."""
        raw, made_cache = self.made.forward(params["made"], x, cond)
        (y, logdet), op_cache = op(raw, x)
        return (y, logdet.sum(axis=-1)), (made_cache, op_cache)

    def _parallel_backward(self, params: Tree, cache: Any, dy: Array, dlogdet: Array, op_backward: Callable) -> Grads:
        made_cache, op_cache = cache
        draw, dx = op_backward(op_cache, dy, _spread(dlogdet, dy.shape))
        grads, dx_made, dcond = self.made.backward(params["made"], made_cache, draw)
        return {"made": grads}, dx + dx_made, dcond

    def _sequential(self, params: Tree, x: Array, cond: Array | None, op: Callable) -> Result:
        """y_h = op(theta_h(y_<h), x_h), one h at a time in the MADE order; entries of y not yet
        computed are 0, which the MADE masks hide from theta_h."""
        xp = B.xp()
        eye = xp.eye(self.dim, dtype=B.value(x).dtype)
        y, logdet, caches = xp.zeros_like(B.value(x)), 0.0, []
        for h in self.steps:
            raw, made_cache = self.made.forward(params["made"], y, cond)
            (y_h, logdet_h), op_cache = op(raw[..., h, :], x[..., h])
            y = y + y_h[..., None] * eye[h]
            logdet = logdet + logdet_h
            caches.append((h, made_cache, op_cache))
        return (y, logdet), caches

    def _sequential_backward(self, params: Tree, caches: Any, dy: Array, dlogdet: Array, op_backward: Callable) -> Grads:
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


class AF(_Autoregressive):
    """Autoregressive flow: eps_h = f(z_h; MADE(z_<h, cond)_h).

    inverse (density) is one parallel MADE call with the closed-form formula; forward (sampling)
    solves z_h = f^-1(eps_h; MADE(z_<h, cond)_h) for one h after another.

    Example: ``layer = AF(4, NLSqTransform(), cond_size=3); params = layer.init(B.host_rng(0))``.
    """

    def _inverse(self, params: Tree, z: Array, cond: Array | None) -> Result:
        return self._parallel(params, z, cond, self.transform.formula)

    def inverse_backward(self, params: Tree, cache: Any, deps: Array, dlogdet: Array) -> Grads:
        return self._parallel_backward(params, cache, deps, dlogdet, self.transform.formula_backward)

    def _forward(self, params: Tree, eps: Array, cond: Array | None) -> Result:
        return self._sequential(params, eps, cond, self.transform.solve)

    def forward_backward(self, params: Tree, cache: Any, dz: Array, dlogdet: Array) -> Grads:
        return self._sequential_backward(params, cache, dz, dlogdet, self.transform.solve_backward)


class IAF(_Autoregressive):
    """Inverse autoregressive flow: z_h = f^-1(eps_h; MADE(eps_<h, cond)_h).

    forward (sampling) is one parallel MADE call on eps; inverse (density) computes
    eps_h = f(z_h; MADE(eps_<h, cond)_h) for one h after another.
    """

    def _forward(self, params: Tree, eps: Array, cond: Array | None) -> Result:
        return self._parallel(params, eps, cond, self.transform.solve)

    def forward_backward(self, params: Tree, cache: Any, dz: Array, dlogdet: Array) -> Grads:
        return self._parallel_backward(params, cache, dz, dlogdet, self.transform.solve_backward)

    def _inverse(self, params: Tree, z: Array, cond: Array | None) -> Result:
        return self._sequential(params, z, cond, self.transform.formula)

    def inverse_backward(self, params: Tree, cache: Any, deps: Array, dlogdet: Array) -> Grads:
        return self._sequential_backward(params, cache, deps, dlogdet, self.transform.formula_backward)


class SCF(Flow):
    """Split coupling flow: the kept half S passes through, eps_S = z_S, and for h outside S
    eps_h = f(z_h; NN(z_S, cond)_h) (inverse) or z_h = f^-1(eps_h; NN(eps_S, cond)_h) (forward).

    S is the first dim // 2 entries, or the rest when ``reverse``. The kept half reaches the
    output twice, by the identity and through the network, and its gradient takes both paths
    (detaching the second lets the scale run off to infinity).
    """

    def __init__(self, dim: int, transform: Any, cond_size: int = 0, hidden_sizes: Sequence[int] = (64,),
                 reverse: bool = False, activation: str = "relu"):
        self._check_config(dim, cond_size, transform)
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

    def _apply(self, params: Tree, x: Array, cond: Array | None, op: Callable) -> Result:
        """y_S = x_S; y_h = op(NN(x_S, cond)_h, x_h) outside S."""
        xp = B.xp()
        kept = x[..., self.kept]
        net_in = kept if cond is None else xp.concatenate([kept, cond], axis=-1)
        out, net_cache = self.net.forward(params["net"], net_in)
        raw = out.reshape(*out.shape[:-1], self.n_changed, self.transform.num_params)
        (changed, logdet), op_cache = op(raw, x[..., self.changed])
        return (self._join(kept, changed), logdet.sum(axis=-1)), (net_cache, op_cache, cond is None)

    def _apply_backward(self, params: Tree, cache: Any, dy: Array, dlogdet: Array, op_backward: Callable) -> Grads:
        net_cache, op_cache, no_cond = cache
        dy_changed = dy[..., self.changed]
        draw, dx_changed = op_backward(op_cache, dy_changed, _spread(dlogdet, dy_changed.shape))
        grads, dnet_in = self.net.backward(params["net"], net_cache, draw.reshape(*draw.shape[:-2], -1))
        dx_kept = dy[..., self.kept] + dnet_in[..., : self.n_kept]  # identity path + network path
        dcond = None if no_cond else dnet_in[..., self.n_kept:]
        return {"net": grads}, self._join(dx_kept, dx_changed), dcond

    def _inverse(self, params: Tree, z: Array, cond: Array | None) -> Result:
        return self._apply(params, z, cond, self.transform.formula)

    def inverse_backward(self, params: Tree, cache: Any, deps: Array, dlogdet: Array) -> Grads:
        return self._apply_backward(params, cache, deps, dlogdet, self.transform.formula_backward)

    def _forward(self, params: Tree, eps: Array, cond: Array | None) -> Result:
        return self._apply(params, eps, cond, self.transform.solve)

    def forward_backward(self, params: Tree, cache: Any, dz: Array, dlogdet: Array) -> Grads:
        return self._apply_backward(params, cache, dz, dlogdet, self.transform.solve_backward)


class Elementwise(Flow):
    """No flow across hidden (the "- AF hidden" ablation of Table 2): eps_h = f(z_h; NN(cond)_h),
    each dimension on its own, conditioned on cond only (which must be given, cond_size >= 1)."""

    def __init__(self, dim: int, transform: Any, cond_size: int, hidden_sizes: Sequence[int] = (64,),
                 activation: str = "relu"):
        self._check_config(dim, cond_size, transform)
        check_positive_int("cond_size", cond_size)
        self.net = MLP(cond_size, hidden_sizes, dim * transform.num_params, activation)

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"net": _near_identity(self.net.init(rng, dtype))}

    def _apply(self, params: Tree, x: Array, cond: Array, op: Callable) -> Result:
        out, net_cache = self.net.forward(params["net"], cond)
        (y, logdet), op_cache = op(out.reshape(*out.shape[:-1], self.dim, self.transform.num_params), x)
        return (y, logdet.sum(axis=-1)), (net_cache, op_cache)

    def _apply_backward(self, params: Tree, cache: Any, dy: Array, dlogdet: Array, op_backward: Callable) -> Grads:
        net_cache, op_cache = cache
        draw, dx = op_backward(op_cache, dy, _spread(dlogdet, dy.shape))
        grads, dcond = self.net.backward(params["net"], net_cache, draw.reshape(*draw.shape[:-2], -1))
        return {"net": grads}, dx, dcond

    def _inverse(self, params: Tree, z: Array, cond: Array) -> Result:
        return self._apply(params, z, cond, self.transform.formula)

    def inverse_backward(self, params: Tree, cache: Any, deps: Array, dlogdet: Array) -> Grads:
        return self._apply_backward(params, cache, deps, dlogdet, self.transform.formula_backward)

    def _forward(self, params: Tree, eps: Array, cond: Array) -> Result:
        return self._apply(params, eps, cond, self.transform.solve)

    def forward_backward(self, params: Tree, cache: Any, dz: Array, dlogdet: Array) -> Grads:
        return self._apply_backward(params, cache, dz, dlogdet, self.transform.solve_backward)
