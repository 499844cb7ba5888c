"""Adam with global-norm gradient clipping, and how a training step reports divergence.

One step on every parameter theta with gradient g (Kingma and Ba, "Adam: A Method for Stochastic
Optimization", 2015, Algorithm 1), after clipping all gradients together by their global norm:

    g     <- g * min(1, c / ||g||),  ||g|| = sqrt(sum over all parameters of sum g^2)
    m_t   =  beta1 m_{t-1} + (1 - beta1) g
    v_t   =  beta2 v_{t-1} + (1 - beta2) g^2
    m^_t  =  m_t / (1 - beta1^t),   v^_t = v_t / (1 - beta2^t)
    theta <- theta - lr m^_t / (sqrt(v^_t) + eps)

The latent flows paper (Ziegler and Rush 2019, supplement) trains with lr = 1e-3 and c = 0.25.
Parameters and gradients are trees (nested dicts of arrays); the optimiser keeps m, v and t per
flattened parameter name ("encoder/lstm/W"), so checkpoints (``checkpoint``) store plain named arrays.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Iterator

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import NonFiniteError, check_float, check_number
from mini_flows.nn.tree import Tree, flatten, tree_map


def global_norm(grads: Tree) -> float:
    """||g|| = sqrt(sum of g^2 over every leaf), accumulated in float64.

    Raises TypeError for a non-float leaf and ValueError naming the first leaf that holds NaN or
    infinity (the norm is computed first, so finite gradients cost a single device sync).
    """
    flat = flatten(grads)
    for name, g in flat.items():
        check_float(f"grads[{name!r}]", g, finite=False)
    xp = B.xp()
    norm = float(xp.sqrt(sum(xp.sum(xp.square(g.astype("float64"))) for g in flat.values()))) if flat else 0.0
    if not math.isfinite(norm):
        for name, g in flat.items():
            check_float(f"grads[{name!r}]", g)
        raise ValueError("the global gradient norm overflows float64; the gradients are finite but enormous")
    return norm


def clip_global_norm(grads: Tree, max_norm: float) -> tuple[Tree, float]:
    """g <- g * max_norm / ||g|| when ||g|| > max_norm, else g unchanged (the same tree).

    Returns the (possibly) clipped gradient tree and the global norm before clipping.
    """
    max_norm = check_number("max_norm", max_norm)
    norm = global_norm(grads)
    if norm <= max_norm:
        return grads, norm
    scale = max_norm / norm
    return tree_map(lambda g: g * scale, grads), norm


Hyperparameters = tuple[float, tuple[float, float], float, "float | None"]
HYPERPARAMETERS = ("lr", "betas", "eps", "clip_norm")
"""Adam's hyperparameters in ``state_dict`` ("clip_norm" only where it clips)."""


def check_hyperparameters(lr: Any, betas: Any, eps: Any, clip_norm: Any = None) -> Hyperparameters:
    """(lr, betas, eps, clip_norm) as Python floats after checking them: lr, eps and clip_norm
    (None: no clipping) finite numbers > 0, betas two numbers in [0, 1) (Python or NumPy, not
    bool); ValueError naming the first that is not. ``Adam`` checks its own with it when built,
    loaded (``load_state_dict``) and before every step."""
    lr, eps = check_number("lr", lr), check_number("eps", eps)
    clip_norm = None if clip_norm is None else check_number("clip_norm", clip_norm)
    try:
        pair = tuple(betas)
    except TypeError:
        pair = ()
    reals = all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in pair)
    if len(pair) != 2 or not reals or not all(0 <= b < 1 for b in pair):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    return lr, (float(pair[0]), float(pair[1])), eps, clip_norm


class Adam:
    """Adam with bias correction and optional global-norm gradient clipping.

    Parameters
    ----------
    lr : step size.
    betas : (beta1, beta2), decay rates of the first and second moment estimates, in [0, 1).
    eps : added to sqrt(v^) in the denominator.
    clip_norm : clip the global gradient norm to this value before each step (None: no clipping).
    (All checked by ``check_hyperparameters``.)

    ``state`` maps each flattened parameter name to {"m": array, "v": array, "t": int}; a name
    gets zero moments the first time it is stepped.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        clip_norm: float | None = None,
    ):
        self.lr, self.betas, self.eps, self.clip_norm = check_hyperparameters(lr, betas, eps, clip_norm)
        self.state: dict[str, dict[str, Any]] = {}

    def _matching_leaves(self, params: Tree, grads: Tree) -> dict[str, Array]:
        """The flattened params, after checking that grads and the state match them and that every
        parameter can be written in place."""
        flat_p, flat_g = flatten(params), flatten(grads)
        if flat_p.keys() != flat_g.keys():
            missing, extra = sorted(flat_p.keys() - flat_g.keys()), sorted(flat_g.keys() - flat_p.keys())
            raise ValueError(
                f"grads must mirror params: missing gradients for {missing}, gradients without a parameter {extra}"
            )
        for name, p in flat_p.items():
            check_float(f"params[{name!r}]", p, finite=False)
            flags = getattr(B.value(p), "flags", None)
            if flags is not None and not getattr(flags, "writeable", True):
                raise ValueError(f"params[{name!r}] is read-only; Adam updates parameters in place")
            check_float(f"grads[{name!r}]", flat_g[name], like=p, finite=False)
            if tuple(flat_g[name].shape) != tuple(p.shape):
                raise ValueError(f"grads[{name!r}] must have shape {tuple(p.shape)}, got {tuple(flat_g[name].shape)}")
            s = self.state.get(name)
            if s is not None and (tuple(s["m"].shape) != tuple(p.shape) or s["m"].dtype != p.dtype):
                raise ValueError(
                    f"optimizer state for {name!r} is {s['m'].dtype} {tuple(s['m'].shape)} but the parameter is "
                    f"{p.dtype} {tuple(p.shape)}; was the state loaded for other parameters?"
                )
        return flat_p

    def step(self, params: Tree, grads: Tree) -> float:
        """Update ``params`` in place (each array is overwritten) from ``grads``, which must mirror it.

        All or nothing: the hyperparameters (which a schedule may have set) and the trees are
        validated and every new value is computed before anything is written, so a failure leaves
        params and state as they were. NaN or infinite gradients, and new values or second moments
        that would be NaN or infinite (a huge lr; an eps that rounds to 0 in the parameters' dtype
        where a gradient is 0; a float32 gradient whose square overflows), raise ``NonFiniteError``
        (a ValueError) naming the parameter, which ``divergence_guard`` reports as divergence; a
        read-only parameter raises ValueError naming it. Returns the global gradient norm before
        clipping.
        """
        check_hyperparameters(self.lr, self.betas, self.eps, self.clip_norm)
        flat_p = self._matching_leaves(params, grads)
        if self.clip_norm is None:
            norm = global_norm(grads)
        else:
            grads, norm = clip_global_norm(grads, self.clip_norm)
        flat_g = flatten(grads)
        xp = B.xp()
        beta1, beta2 = self.betas
        updates = {}
        for name, p in flat_p.items():
            g = flat_g[name]
            s = self.state.get(name) or {"m": xp.zeros_like(p), "v": xp.zeros_like(p), "t": 0}
            t = s["t"] + 1
            m = beta1 * s["m"] + (1 - beta1) * g
            v = beta2 * s["v"] + (1 - beta2) * (g * g)
            m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
            updates[name] = (p - self.lr * m_hat / (xp.sqrt(v_hat) + self.eps), {"m": m, "v": v, "t": t})
        self._check_finite(updates)
        for name, (new_p, new_state) in updates.items():
            flat_p[name][...] = new_p
            self.state[name] = new_state
        return norm

    def _check_finite(self, updates: dict[str, tuple[Array, dict[str, Any]]]) -> None:
        """NonFiniteError naming the first parameter whose new value or second moment holds NaN or
        infinity (one device sync when all are finite). The first moment, an average of finite
        gradients, cannot overflow; g^2 in the second can, and then freezes the parameter."""
        xp = B.xp()
        parts = [(name, what, a) for name, (new_p, s) in updates.items()
                 for what, a in (("new value", new_p), ("second moment", s["v"]))]
        if not parts:
            return
        finite = B.to_numpy(xp.stack([xp.isfinite(a).all() for _, _, a in parts]))
        if finite.all():
            return
        name, what, a = parts[int((~finite).argmax())]
        zero_eps = float(xp.asarray(self.eps, dtype=a.dtype)) == 0
        hint = f", which is 0 in {a.dtype}: raise eps" if zero_eps else ""
        raise NonFiniteError(f"Adam's step would make the {what} of params[{name!r}] NaN or infinite (lr {self.lr:g}, "
                             f"eps {self.eps:g}{hint}); params and optimizer state are unchanged")

    def state_dict(self) -> dict[str, Array]:
        """Hyperparameters and state as flat named arrays: "lr", "betas", "eps", "clip_norm"
        (absent when None), and "m/NAME", "v/NAME", "t/NAME" for every parameter NAME."""
        xp = B.xp()
        arrays = {"lr": xp.asarray(self.lr), "betas": xp.asarray(self.betas), "eps": xp.asarray(self.eps)}
        if self.clip_norm is not None:
            arrays["clip_norm"] = xp.asarray(self.clip_norm)
        for name, s in self.state.items():
            arrays.update({f"m/{name}": s["m"], f"v/{name}": s["v"], f"t/{name}": xp.asarray(s["t"], dtype="int64")})
        return arrays

    def load_state_dict(self, arrays: dict[str, Array], params: Tree | None = None) -> None:
        """Restore hyperparameters and state written by ``state_dict`` (replacing the current ones).

        The whole state is checked before anything changes (ValueError naming the entry, and
        nothing loaded): an entry ``state_dict`` never writes; "lr", "betas" or "eps" missing, not a
        number (two for "betas"), or refused by ``check_hyperparameters``; for a parameter NAME,
        "m/NAME", "v/NAME" or "t/NAME" missing, moments that are not float arrays of one shape and
        dtype (the parameter's, where ``params``, the tree the state is for, is given; then NAME
        must be one of its parameters), not finite, or (v) negative; a step count "t/NAME" that is
        not an integer >= 0.
        """
        hyperparameters, state = _checked_state(arrays, None if params is None else flatten(params))
        self.lr, self.betas, self.eps, self.clip_norm = hyperparameters
        self.state = state


def _checked_state(arrays: dict[str, Array], params: dict[str, Array] | None
                   ) -> tuple[Hyperparameters, dict[str, dict[str, Any]]]:
    """The hyperparameters and per-parameter state of ``arrays`` (see ``Adam.load_state_dict``),
    after checking them all; ``params``: the flattened parameters the state is for, or None."""
    unknown = sorted(key for key in arrays if key not in HYPERPARAMETERS and not key.startswith(("m/", "v/", "t/")))
    if unknown:
        raise ValueError(f"the Adam state's {unknown[0]!r} is not an entry Adam writes")
    missing = [key for key in HYPERPARAMETERS[:3] if key not in arrays]
    if missing:
        raise ValueError(f"the Adam state lacks {' and '.join(map(repr, missing))}")
    values: dict[str, Any] = {}
    for key in HYPERPARAMETERS:
        if key in arrays:
            a = B.to_numpy(arrays[key])
            if a.shape != ((2,) if key == "betas" else ()) or a.dtype.kind not in "iuf":
                raise ValueError(f"the Adam state's {key!r} is {a.dtype} {a.shape}, not "
                                 f"{'two numbers' if key == 'betas' else 'a number'}")
            values[key] = a.tolist()
    hyperparameters = check_hyperparameters(values["lr"], tuple(values["betas"]), values["eps"],
                                            values.get("clip_norm"))
    names = sorted({key.split("/", 1)[1] for key in arrays if key not in HYPERPARAMETERS})
    moments = []
    state = {}
    for name in names:
        absent = [f"{kind}/{name}" for kind in "mvt" if f"{kind}/{name}" not in arrays]
        if absent:
            raise ValueError(f"the Adam state lacks {' and '.join(map(repr, absent))}")
        if params is not None and name not in params:
            raise ValueError(f"the Adam state has moments for {name!r}, which is not a parameter")
        if params is None:
            like, what = arrays[f"m/{name}"], f"'m/{name}'"
        else:
            like, what = B.value(params[name]), f"params[{name!r}]"
        for kind in "mv":
            a = arrays[f"{kind}/{name}"]
            if a.dtype.kind != "f":
                raise ValueError(f"the Adam state's '{kind}/{name}' is {a.dtype} {tuple(a.shape)}, not a float array")
            if a.dtype != like.dtype or tuple(a.shape) != tuple(like.shape):
                raise ValueError(f"the Adam state's '{kind}/{name}' is {a.dtype} {tuple(a.shape)} and {what} "
                                 f"{like.dtype} {tuple(like.shape)}; the moments have the parameter's shape and dtype")
            moments.append((f"{kind}/{name}", a))
        t = B.to_numpy(arrays[f"t/{name}"])
        if t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            shown = f"{t.dtype} {t.shape}" if t.shape != () else repr(t.tolist())
            raise ValueError(f"the Adam state's 't/{name}' is {shown}, not a step count (an integer >= 0)")
        state[name] = {"m": arrays[f"m/{name}"], "v": arrays[f"v/{name}"], "t": int(t)}
    _check_moments(moments)
    return hyperparameters, state


def _check_moments(moments: list[tuple[str, Array]]) -> None:
    """ValueError naming the first moment ("m/NAME" or "v/NAME") that holds NaN or infinity, or
    (v) a negative value; one device sync when all are good."""
    if not moments:
        return
    xp = B.xp()
    checks = []
    for key, a in moments:
        ok = xp.isfinite(a).all()
        checks.append(ok if key[0] == "m" else ok & (a >= 0).all())
    good = B.to_numpy(xp.stack(checks))
    if good.all():
        return
    key, _ = moments[int((~good).argmax())]
    raise ValueError(f"the Adam state's {key!r} holds " + ("NaN or infinity" if key[0] == "m"
                                                             else "NaN, infinity or negative values"))


class TrainingDiverged(ValueError):
    """Training produced NaN or infinity: the message names the step, the last finite loss and
    what to change."""


@contextlib.contextmanager
def divergence_guard(step: int, lr: float, last_loss: float | None) -> Iterator[None]:
    """Run one training step (1-based ``step``); NaN or infinity anywhere inside it (activations,
    loss, gradients, Adam's new parameters: a ``NonFiniteError``) becomes ``TrainingDiverged``
    naming the step, the last finite loss and the learning rate to lower."""
    try:
        yield
    except NonFiniteError as err:
        before = "" if last_loss is None else f" (loss {last_loss:.4g} at step {step - 1})"
        raise TrainingDiverged(
            f"training diverged at step {step}{before}: {err}; lower the learning rate (now {lr:g}) or clip "
            "the gradient norm harder"
        ) from err


def check_loss(step: int, loss: float) -> float:
    """``loss`` after checking it is finite (``NonFiniteError`` otherwise, for ``divergence_guard``)."""
    if not math.isfinite(loss):
        raise NonFiniteError(f"the loss is {loss} at step {step}")
    return loss


def loss_rise(losses: list[float]) -> str | None:
    """A warning where training made the loss clearly worse: the mean over the last tenth of
    ``losses`` (at least one step) more than 10% above the loss of the first step, the untrained
    model's (minibatch noise alone moves a short run by less); None otherwise."""
    tenth = max(1, len(losses) // 10)
    last = sum(losses[-tenth:]) / tenth
    if len(losses) < 2 or last - losses[0] <= 0.1 * abs(losses[0]):
        return None
    return (f"warning: the loss rose from {losses[0]:.4g} (step 1) to {last:.4g} (mean of the last {tenth}): "
            "training diverged upward; lower the learning rate")
