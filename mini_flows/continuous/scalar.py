"""Elementwise scalar transforms of Ziegler and Rush (2019): affine and non-linear squared (NLSq).

Each transform is strictly increasing in x, with parameters that arrive as raw (unconstrained)
network outputs on a last axis of size ``num_params``:

    AffineTransform   raw = (a, log_b)                     f(x) = a + b x
    NLSqTransform     raw = (a, log_b, c_raw, log_d, g)    f(x) = a + b x + c / (1 + (d x + g)^2)

Two directions, each with a hand-written backward pass:

    ``formula(raw, x) -> ((y, logdet), cache)``   y = f(x), logdet = log f'(x), the closed form;
    ``solve(raw, y) -> ((x, logdet), cache)``     x = f^-1(y) (a cubic for NLSq), logdet = -log f'(x).

Shapes: raw : (..., num_params); x, y : (...) broadcastable against raw's leading axes; outputs
have the broadcast shape; the backward passes return gradients of raw's and of x's (y's) shape.

Inside the flows the formula runs in the data -> base direction (density, training) and the solve
in the base -> data direction (sampling), as in supplement B: eps = formula(raw, z),
z = solve(raw, eps).

References: Z. Ziegler and A. Rush, "Latent Normalizing Flows for Discrete Sequences", ICML 2019,
section 4.3 and supplement B.

Example::

    t = NLSqTransform(alpha=0.95)
    (y, logdet), cache = t.formula(raw, x)         # raw : (batch, 5), x : (batch,)
    (x_back, logdet_inv), _ = t.solve(raw, y)      # x_back == x, logdet_inv == -logdet
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import broadcast_shapes, check_float
from mini_flows.continuous.cubic import K_MAX, nlsq_inverse, one_minus_m
from mini_flows.continuous.errors import raise_where
from mini_flows.nn.broadcast import unbroadcast

_S_CLIP = 1e18  # |s| = |d x + g| above this: c / (1 + s^2) < 1e-36 b / d, below round-off of b x; s^2 fits float32
_K_RAW_CAP = K_MAX * (1 - 2**-49)  # from_raw's |k|: 4 roundings of c d / b in float64 stay below K_MAX


def check_alpha(alpha: Any) -> float:
    """Return alpha as a float, or raise ValueError unless it is a number in (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1) (NLSq is invertible only then), got {alpha!r}")
    return float(alpha)


class ScalarTransform:
    """An elementwise, strictly increasing map y = f(x; raw) with both directions differentiable.

    Subclass requirements
    ---------------------
    ``num_params``: the size of raw's last axis.
    ``_params(raw) -> dict``: the constrained parameters (b = exp(log_b), ...), computed once per
    call and shared by both directions.
    ``_formula(params, x) -> ((y, logdet), cache)``: the closed form, traceable by autograd; cache
    is a dict holding at least "fprime" (f'(x)) and "dlogdet_dx" (d log f'(x) / dx), plus what
    ``_partials`` needs.
    ``_partials(cache, dy, dlogdet) -> (draw_list, dx)``: the vector-Jacobian product of the
    formula, one gradient per raw parameter, all of the broadcast shape.
    ``_inverse(params, y) -> x``: f^-1, traceable by autograd.
    The base class validates inputs, reduces broadcast gradients and derives the solve's backward
    pass from the formula's by the implicit-function theorem.
    """

    num_params: int
    param_names: tuple[str, ...]

    def _check(self, raw: Array, x: Array, name: str, check: bool) -> None:
        """Validate raw and x: dtype and shape (where ``check``), and every entry finite (always)."""
        xp = B.xp()
        if check:
            check_float("raw", raw, finite=False)
            shape = tuple(B.value(raw).shape)
            if len(shape) < 1 or shape[-1] != self.num_params:
                raise ValueError(f"raw must have shape (..., {self.num_params}), got {shape}")
            check_float(name, x, like=raw, finite=False)
            broadcast_shapes(shape[:-1], tuple(B.value(x).shape), f"raw's leading axes and {name}:")
        if _surely_finite(raw, x):
            return
        out_shape = broadcast_shapes(tuple(B.value(raw).shape[:-1]), tuple(B.value(x).shape), f"raw and {name}:")
        values, where = self._values(raw, x, name), f"{type(self).__name__}: "
        raise_where(xp.broadcast_to(~xp.all(xp.isfinite(B.value(raw)), axis=-1), out_shape),
                    where + "raw contains NaN or infinity", values)
        raise_where(xp.broadcast_to(~xp.isfinite(B.value(x)), out_shape), f"{where}{name} contains NaN or infinity",
                    values)

    def _values(self, raw: Array, x: Array, name: str) -> dict[str, Array]:
        """raw's parameters and x by name, for an error message."""
        return {n: B.value(raw)[..., i] for i, n in enumerate(self.param_names)} | {name: B.value(x)}

    def _check_result(self, what: str, result: tuple[Array, Array], raw: Array, x: Array, name: str) -> None:
        """FlowRangeError where the result (value, logdet) overflows its dtype, for inputs raw and x
        (named ``name``) that are finite."""
        if _surely_finite(*result):
            return
        xp = B.xp()
        value, logdet = (B.value(v) for v in result)
        raise_where(~(xp.isfinite(value) & xp.isfinite(logdet)),
                    f"{type(self).__name__}: {what} is NaN or infinity in {value.dtype} for these finite inputs "
                    "(it overflows)", self._values(raw, x, name))

    def formula(self, raw: Array, x: Array, *, check: bool = True) -> tuple[tuple[Array, Array], dict]:
        """y = f(x) and logdet = log f'(x), elementwise.

        raw : (..., num_params), x : (...). Returns y, logdet of the broadcast shape, and a cache.
        Raises FlowRangeError (a ValueError) for non-finite input or where y overflows the dtype;
        dtypes and shapes are checked unless ``check`` is False (a flow layer, which made raw itself).
        """
        self._check(raw, x, "x", check)
        (y, logdet), cache = self._formula(self._params(raw), x)
        self._check_result("y = f(x)", (y, logdet), raw, x, "x")
        cache.update(raw_shape=tuple(B.value(raw).shape), x_shape=tuple(B.value(x).shape))
        return (y, logdet), cache

    def formula_backward(self, cache: dict, dy: Array, dlogdet: Array) -> tuple[Array, Array]:
        """Gradients (draw : raw's shape, dx : x's shape) from cotangents dy, dlogdet on y, logdet."""
        xp = B.xp()
        grads, dx = self._partials(cache, dy, dlogdet)
        shape = tuple(B.value(cache["fprime"]).shape)
        draw = xp.empty((*shape, self.num_params), dtype=B.value(cache["fprime"]).dtype)
        for i, g in enumerate(grads):  # written in place: a backward pass is never traced by autograd
            draw[..., i] = g
        return _sum_to(draw, draw.shape, cache["raw_shape"]), _sum_to(dx, shape, cache["x_shape"])

    def solve(self, raw: Array, y: Array, *, check: bool = True) -> tuple[tuple[Array, Array], dict]:
        """x = f^-1(y) and logdet = log |dx/dy| = -log f'(x), elementwise.

        raw : (..., num_params), y : (...). Returns x, logdet of the broadcast shape, and a cache.
        Raises FlowRangeError (a ValueError) for non-finite input or where x overflows the dtype
        (and, for NLSq, outside the range where the inverse is accurate: ``cubic.nlsq_inverse``);
        dtypes and shapes are checked unless ``check`` is False (a flow layer, which made raw itself).
        """
        self._check(raw, y, "y", check)
        params = self._params(raw)
        x = self._inverse(params, y)
        (_, logdet), cache = self._formula(params, x)
        self._check_result("x = f^-1(y)", (x, logdet), raw, y, "y")
        cache.update(raw_shape=tuple(B.value(raw).shape), x_shape=tuple(B.value(x).shape))
        return (x, -logdet), {"formula": cache, "y_shape": tuple(B.value(y).shape)}

    def solve_backward(self, cache: dict, dx: Array, dlogdet: Array) -> tuple[Array, Array]:
        """Gradients (draw : raw's shape, dy : y's shape) from cotangents dx, dlogdet on x, logdet.

        Implicit-function theorem on f(x; theta) = y: dx = (dy - sum_k df/dtheta_k dtheta_k) / f'(x).
        With logdet = -L(x; theta), L = log f', the cotangent reaching x is gx = dx - dlogdet dL/dx;
        then dy = gx / f' and draw is the formula's vector-Jacobian product with cotangents
        (-gx / f', -dlogdet) on (y, L) at fixed x.
        """
        fc = cache["formula"]
        gx = dx - dlogdet * fc["dlogdet_dx"]
        dy = gx / fc["fprime"]
        draw, _ = self.formula_backward(fc, -dy, -dlogdet)
        return draw, _sum_to(dy, tuple(fc["fprime"].shape), cache["y_shape"])


def _sum_to(g: Array, shape: tuple[int, ...], target: tuple[int, ...]) -> Array:
    """The gradient g, broadcast to ``shape`` (the call's broadcast shape), summed back to ``target``,
    the shape of the argument it belongs to; g itself where all three shapes agree (a flow layer's
    calls), without the two passes that would return it unchanged."""
    if tuple(g.shape) == shape == target:
        return g
    return unbroadcast(B.xp().broadcast_to(g, shape), target)


def _surely_finite(*arrays: Array) -> bool:
    """True when every entry of the arrays is finite, tested by one sum each: NaN and infinity
    survive a sum, so finite totals prove them absent. False is not proof of the opposite (finite
    entries can overflow their total): the caller then tests entry by entry."""
    xp = B.xp()
    return bool(xp.isfinite(sum(B.value(a).sum() for a in arrays)))


class AffineTransform(ScalarTransform):
    """f(x) = a + b x with b = exp(log_b); raw = (a, log_b); log f'(x) = log_b."""

    num_params = 2
    param_names = ("a", "log_b")

    def _params(self, raw: Array) -> dict:
        return {"a": raw[..., 0], "log_b": raw[..., 1], "b": B.xp().exp(raw[..., 1])}

    def _formula(self, params: dict, x: Array) -> tuple[tuple[Array, Array], dict]:
        xp = B.xp()
        a, log_b, b = params["a"], params["log_b"], params["b"]
        y = a + b * x
        logdet = log_b + xp.zeros_like(y)
        fprime = b + xp.zeros_like(y)
        return (y, logdet), {"x": x, "b": b, "fprime": fprime, "dlogdet_dx": xp.zeros_like(y)}

    def _partials(self, cache: dict, dy: Array, dlogdet: Array) -> tuple[list[Array], Array]:
        b, x = cache["b"], cache["x"]
        return [dy, dy * b * x + dlogdet], dy * b

    def _inverse(self, params: dict, y: Array) -> Array:
        return (y - params["a"]) / params["b"]


class Swapped:
    """The scalar transform f^-1 of ``transform`` f: its ``formula`` is f's ``solve`` and its
    ``solve`` f's ``formula``, each with its backward pass, so a layer that runs the formula in
    parallel and the solve sequentially runs f's solve in parallel instead (``layers.IAF``).

    Example: ``Swapped(NLSqTransform()).formula(raw, z)`` is ``NLSqTransform().solve(raw, z)``.
    """

    def __init__(self, transform: ScalarTransform):
        self.transform, self.num_params = transform, transform.num_params
        self.formula, self.formula_backward = transform.solve, transform.solve_backward
        self.solve, self.solve_backward = transform.formula, transform.formula_backward


def _nlsq_core(
    a: Array, b: Array, c: Array, d: Array, g: Array, k: Array, gap: Array, log_b: Array, x: Array
) -> tuple[Array, Array, dict]:
    """y = a + b x + c / (1 + s^2) and log f'(x) = log b + log(1 - m), s = d x + g,
    m = 2 k s / (1 + s^2)^2, k = c d / b, gap = 1 - |k| / K_MAX (so f'(x) = b (1 - m) >= b gap).

    All arguments (...) broadcastable; 1 - m comes from ``one_minus_m`` (cubic.py's (B.5)), which
    keeps it accurate, and positive, however small gap is."""
    xp = B.xp()
    s = xp.minimum(xp.maximum(d * x + g, -_S_CLIP), _S_CLIP)
    den = 1 + s * s
    sd = s / den
    m = 2 * k * sd / den
    one_m = one_minus_m(s, k, gap)
    y = a + b * x + c / den
    logdet = log_b + xp.log(one_m)
    return y, logdet, {"s": s, "den": den, "sd": sd, "m": m, "one_m": one_m}


class NLSqTransform(ScalarTransform):
    """f(x) = a + b x + c / (1 + (d x + g)^2), strictly increasing (supplement B).

    raw = (a, log_b, c_raw, log_d, g) with b = exp(log_b), d = exp(log_d) and
    c = (8 sqrt 3 / (9 d)) b alpha tanh(c_raw), so that b > (9 / (8 sqrt 3)) |c| d: the least
    slope is f'(x*) = b (1 - alpha |tanh c_raw|) > 0, at x* = (sign(c) / sqrt 3 - g) / d.
    ``solve`` finds the real root of the cubic analytically (``cubic.nlsq_inverse``), accurate for
    |log_b|, |log_d| <= 40 (``cubic.LOG_SCALE_MAX``) and raising FlowRangeError outside.

    Every alpha in (0, 1) works in float32 as in float64: the least slope over b,
    (1 - alpha) + alpha (1 - |tanh c_raw|), is formed from 1 - alpha in float64 and never rounds
    to 0, and f'(x) = b (1 - m) comes from (B.5) without cancellation, so logdet stays finite and
    accurate even where float32 rounds alpha or k = c d / b to 1 or past K_MAX.
    """

    num_params = 5
    param_names = ("a", "log_b", "c_raw", "log_d", "g")

    def __init__(self, alpha: float = 0.95):
        self.alpha = check_alpha(alpha)

    def _params(self, raw: Array) -> dict:
        xp = B.xp()
        a, log_b, c_raw, log_d, g = (raw[..., i] for i in range(5))
        th = xp.tanh(c_raw)
        e2 = xp.exp(-2 * xp.copysign(1.0, B.value(c_raw)) * c_raw)  # exp(-2 |c_raw|) in (0, 1]
        k = (K_MAX * self.alpha) * th  # k = c d / b
        gap = (1 - self.alpha) + self.alpha * (2 * e2 / (1 + e2))  # 1 - alpha |th|: 1 - |th| = 2 e2 / (1 + e2)
        b, d = xp.exp(log_b), xp.exp(log_d)
        # c from the rounded b and d, so |c| d / b stays within a few ulps of |k| <= K_MAX (the solve needs it)
        return {"a": a, "b": b, "c": (b / d) * k, "d": d, "g": g, "k": k, "gap": gap, "log_b": log_b, "th": th}

    def _formula(self, p: dict, x: Array) -> tuple[tuple[Array, Array], dict]:
        y, logdet, loc = _nlsq_core(p["a"], p["b"], p["c"], p["d"], p["g"], p["k"], p["gap"], p["log_b"], x)
        s, den, one_m, k = loc["s"], loc["den"], loc["one_m"], p["k"]
        dm_ds = 2 * k * ((1 - 3 * s * s) / den) / den / den  # d m / d s
        cache = dict(p, **loc, x=x, dL_ds=-dm_ds / one_m)
        cache.update(fprime=p["b"] * one_m, dlogdet_dx=cache["dL_ds"] * p["d"])
        return (y, logdet), cache

    def _partials(self, cache: dict, dy: Array, dlogdet: Array) -> tuple[list[Array], Array]:
        b, c, d, x = cache["b"], cache["c"], cache["d"], cache["x"]
        den, sd, m, one_m = cache["den"], cache["sd"], cache["m"], cache["one_m"]
        gs = -dy * (b / d) * m + dlogdet * cache["dL_ds"]  # dy/ds = -(b/d) m
        gk = dy * (b / d) / den - dlogdet * (2 * sd / den) / one_m  # dm/dk = 2 s / den^2
        bump = c / den
        grads = [
            dy,  # a
            dy * (b * x + bump) + dlogdet,  # log_b
            gk * (K_MAX * self.alpha) * (1 - cache["th"] ** 2),  # c_raw
            -dy * bump + gs * d * x,  # log_d (c ~ 1/d, s = d x + g)
            gs,  # g
        ]
        return grads, dy * b + gs * d

    def _inverse(self, p: dict, y: Array) -> Array:
        return nlsq_inverse(y, p["a"], p["b"], p["c"], p["d"], p["g"])


def _as_array(v: Any) -> Any:
    """Python numbers become float64 0-d arrays and NumPy scalars 0-d arrays of their own dtype
    (np.float32(1.5) stays float32), so ``NLSq`` takes both; arrays pass through."""
    if isinstance(v, bool) or not isinstance(v, Real):
        return v
    return B.asarray(v, "float64") if type(v) in (int, float) else B.asarray(v)


def _float64(v: Array) -> Array:
    return B.value(v).astype("float64")


def _check_params(names: Sequence[str], values: tuple[Array, ...]) -> tuple[int, ...]:
    """Check finite float arrays of the first one's dtype; return their broadcast shape."""
    shape: tuple[int, ...] = ()
    for name, v in zip(names, values):
        check_float(name, v, like=values[0])
        shape = broadcast_shapes(shape, tuple(B.value(v).shape), f"the parameters up to {name}:")
    return shape


class NLSq:
    """The NLSq scalar map with given parameters: z = f(eps) = a + b eps + c / (1 + (d eps + g)^2).

    Requires b > 0, d > 0 and b > (9 / (8 sqrt 3)) |c| d (strictly increasing, supplement B),
    checked in float64 on the given values. a, b, c, d, g : (...) float arrays of one dtype (0-d
    arrays, NumPy scalars and Python floats too, the last as float64), broadcastable with each
    other and with the inputs of ``forward`` and ``inverse``. ``inverse`` is accurate to a few
    ulps of the problem's conditioning for b, d in [exp(-40), exp(40)] and raises FlowRangeError
    (a ValueError) outside (see ``cubic.nlsq_inverse``); ``forward`` raises it where z overflows.

    Example::

        f = NLSq.from_raw(a, log_b, c_raw, log_d, g, alpha=0.95)
        z, logdet = f.forward(eps)        # closed form
        eps_back, logdet_inv = f.inverse(z)  # the cubic's real root; logdet_inv == -logdet
    """

    def __init__(self, a: Array, b: Array, c: Array, d: Array, g: Array):
        xp = B.xp()
        a, b, c, d, g = map(_as_array, (a, b, c, d, g))
        shape = _check_params("abcdg", (a, b, c, d, g))
        if not (bool(xp.all(B.value(b) > 0)) and bool(xp.all(B.value(d) > 0))):
            raise ValueError("b and d must be positive")
        k = _float64(c) * _float64(d) / _float64(b)
        if not bool(xp.all(xp.abs(k) < K_MAX)):
            raise ValueError("NLSq needs b > (9 / (8 sqrt 3)) |c| d to be strictly increasing; build it with from_raw")
        self.a, self.b, self.c, self.d, self.g = a, b, c, d, g
        self.shape = shape
        dtype = B.value(a).dtype
        self._k, self._gap = k.astype(dtype), (1 - xp.abs(k) / K_MAX).astype(dtype)  # the least slope over b, exact

    @classmethod
    def from_raw(cls, a: Array, log_b: Array, c_raw: Array, log_d: Array, g: Array, alpha: float = 0.95) -> "NLSq":
        """b = exp(log_b), d = exp(log_d), c = (8 sqrt 3 / (9 d)) b alpha tanh(c_raw); alpha in (0, 1).

        c is formed in float64 from the rounded b and d and rounded toward zero to their dtype, and
        alpha |tanh c_raw| is capped at 1 - 2^-49, so no rounding can carry c past the bound and
        every alpha in (0, 1) gives a valid NLSq, in float32 too.
        """
        xp = B.xp()
        alpha = check_alpha(alpha)
        a, log_b, c_raw, log_d, g = map(_as_array, (a, log_b, c_raw, log_d, g))
        _check_params(("a", "log_b", "c_raw", "log_d", "g"), (a, log_b, c_raw, log_d, g))
        b, d = xp.exp(log_b), xp.exp(log_d)
        k = xp.clip((K_MAX * alpha) * xp.tanh(_float64(c_raw)), -_K_RAW_CAP, _K_RAW_CAP)
        c64 = k * (_float64(b) / _float64(d))
        c = c64.astype(B.value(b).dtype)
        c = xp.where(xp.abs(c) > xp.abs(c64), xp.nextafter(c, xp.zeros_like(c)), c)
        return cls(a, b, c, d, g)

    def _check(self, name: str, x: Array) -> None:
        check_float(name, x, like=self.a)
        broadcast_shapes(self.shape, tuple(B.value(x).shape), f"the parameters and {name}:")

    def forward(self, eps: Array) -> tuple[Array, Array]:
        """z = f(eps) and logdet = log f'(eps), elementwise; eps : (...). z and logdet both have the
        broadcast shape of eps and the parameters (logdet too where only a varies, which log f'
        does not read)."""
        eps = _as_array(eps)
        self._check("eps", eps)
        xp = B.xp()
        z, logdet, _ = _nlsq_core(self.a, self.b, self.c, self.d, self.g, self._k, self._gap, xp.log(self.b), eps)
        logdet = logdet + xp.zeros_like(z)
        raise_where(~(xp.isfinite(z) & xp.isfinite(logdet)), f"NLSq.forward: z = f(eps) overflows {z.dtype} to NaN or infinity",
                    dict(eps=eps, a=self.a, b=self.b, c=self.c, d=self.d, g=self.g))
        return z, logdet

    def inverse(self, z: Array) -> tuple[Array, Array]:
        """eps = f^-1(z), the real root of the cubic, and logdet = -log f'(eps); z : (...). Both
        have the broadcast shape of z and the parameters."""
        z = _as_array(z)
        self._check("z", z)
        eps = nlsq_inverse(z, self.a, self.b, self.c, self.d, self.g)
        return eps, -self.forward(eps)[1]

