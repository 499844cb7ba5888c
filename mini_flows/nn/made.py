"""MADE: a masked autoencoder whose outputs are autoregressive in its inputs.

Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation" (2015).
An MLP whose weights are multiplied by fixed 0/1 masks, so that output i sees only the inputs
that come strictly before i in a chosen order. AF and IAF use it to produce the parameters of
each dimension's scalar transform from the dimensions before it.

Degrees (Germain et al., section 4). Dimension j has degree o_j = order[j], its position in the
order (0-based). Hidden unit k of every hidden layer gets the degree h_k = lo + (k mod (dim - lo)),
cycling deterministically over lo..dim-1, so the masks never depend on a seed. A unit of degree h
may depend on the dimensions with o_j < h, hence

    input j  -> hidden k :  o_j < h_k          (eq. 12, 0-based)
    hidden k -> hidden l :  h_k <= h_l         (eq. 12)
    hidden k -> output i :  h_k <= o_i         (eq. 13)
    input j  -> output i :  o_j < o_i          (no hidden layers)

lo = 1 in the plain MADE (a degree-0 unit would see no input at all). With a conditioning input,
or with dim == 1, lo = 0: degree-0 units see cond only and feed every output, which is how the
first output in the order depends (non-linearly) on cond.

Conditioning enters the first layer only, through an unmasked dense map ``cond @ W_cond`` added to
the first layer's pre-activation (the first hidden layer, or the output layer when there are no
hidden layers). Every later unit sees it through the degree-0 units and through its own degree's
units, so every output may depend on cond. There are no skip connections.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_positive_int, check_shape
from mini_flows.nn import init
from mini_flows.nn.activations import activation as activation_pair
from mini_flows.nn.tree import Tree


def _resolve_order(order: str | Sequence[int], dim: int) -> tuple[int, ...]:
    """The order as a tuple: "forward" is (0, ..., dim-1), "reversed" (dim-1, ..., 0), else a permutation."""
    expected = f"order must be 'forward', 'reversed' or a permutation of range({dim}), got {order!r}"
    if isinstance(order, str):
        if order == "forward":
            return tuple(range(dim))
        if order == "reversed":
            return tuple(range(dim - 1, -1, -1))
        raise ValueError(expected)
    try:
        items = tuple(order)
        resolved = tuple(operator.index(o) for o in items if not isinstance(o, bool))
    except TypeError as err:
        raise ValueError(expected) from err
    if len(resolved) != len(items) or sorted(resolved) != list(range(dim)):
        raise ValueError(f"order must be a permutation of range({dim}), got {items!r}")
    return resolved


class MADE:
    """Masked MLP with autoregressive outputs.

    out(x, c) = (W_L . M_L) g( ... g((W_0 . M_0) x + W_cond c + b_0) ... ) + b_L, reshaped to
    (..., dim, params_per_dim), where . is the elementwise product, g the activation and the
    masks M_l follow the degree rules in the module docstring, so that

        d out[..., i, :] / d x[..., j] = 0   unless   order[j] < order[i].

    Parameters
    ----------
    dim : number of autoregressive dimensions D.
    hidden_sizes : sizes of the hidden layers (may be empty: one masked affine map).
    params_per_dim : number P of outputs per dimension (e.g. 2 for a shift and a log-scale).
    cond_size : size C of the conditioning input every output may see (0: none).
    order : "forward", "reversed", or ``order[i]`` = position of dimension i in the order.
    activation : "relu", "tanh", "sigmoid" or "gelu".
    in_features : None for one scalar per dimension, x : (..., D); or F for a feature vector per
        dimension, x : (..., D, F) (a one-hot token, say), all F inputs of dimension i sharing its degree.

    Inputs: x : (..., D) or (..., D, F), cond : (..., C) or None. Returns out : (..., D, P).
    Parameters: ``layer_l`` for l = 0..len(hidden_sizes), each with W : (n_in, n_out) and
    b : (n_out,); ``layer_0`` also has W_cond : (C, n_out) when C > 0. The output layer has
    n_out = D * P, unit i * P + p giving out[..., i, p].
    """

    def __init__(
        self,
        dim: int,
        hidden_sizes: Sequence[int],
        params_per_dim: int,
        cond_size: int = 0,
        order: str | Sequence[int] = "forward",
        activation: str = "relu",
        in_features: int | None = None,
    ):
        check_positive_int("dim", dim)
        check_positive_int("params_per_dim", params_per_dim)
        check_positive_int("cond_size", cond_size, minimum=0)
        if in_features is not None:
            check_positive_int("in_features", in_features)
        hidden_sizes = tuple(hidden_sizes)
        for i, n in enumerate(hidden_sizes):
            check_positive_int(f"hidden_sizes[{i}]", n)
        self.act_forward, self.act_backward = activation_pair(activation)
        self.dim, self.hidden_sizes, self.params_per_dim = dim, hidden_sizes, params_per_dim
        self.cond_size, self.activation = cond_size, activation
        self.order = _resolve_order(order, dim)
        self.in_features = in_features
        self.x_tail = (dim,) if in_features is None else (dim, in_features)
        in_degrees = tuple(o for o in self.order for _ in range(in_features or 1))
        lo = 0 if cond_size or dim == 1 else 1
        out_degrees = tuple(o for o in self.order for _ in range(params_per_dim))
        hidden = [tuple(lo + k % (dim - lo) for k in range(n)) for n in hidden_sizes]
        # degrees of the input units, of each hidden layer's units and of the output units
        self.degrees: tuple[tuple[int, ...], ...] = (in_degrees, *hidden, out_degrees)
        self._masks: dict[tuple[str, Any], list[Array]] = {}  # by backend and dtype: see _masks_for

    @property
    def num_layers(self) -> int:
        """Number of masked affine maps: len(hidden_sizes) + 1."""
        return len(self.hidden_sizes) + 1

    def masks(self, dtype: Any = "float64") -> list[Array]:
        """The 0/1 masks M_l : (n_in, n_out), built on the current backend from the degrees."""
        masks = []
        for i in range(self.num_layers):
            rows = B.asarray(self.degrees[i])[:, None]
            cols = B.asarray(self.degrees[i + 1])[None, :]
            connected = rows < cols if i == 0 else rows <= cols  # eq. 12 (strict from the input)
            masks.append(connected.astype(dtype))
        return masks

    def _masks_for(self, dtype: Any) -> list[Array]:
        """``masks(dtype)``, built once per backend and dtype and kept: every call reuses them."""
        key = (B.get_backend(), B.float_dtype(dtype))
        if key not in self._masks:
            self._masks[key] = self.masks(dtype)
        return self._masks[key]

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        """Glorot weights with the masked entries set to zero; zero biases."""
        params: Tree = {}
        for i, mask in enumerate(self.masks(dtype)):
            n_in, n_out = mask.shape
            layer = {"W": init.glorot(rng, n_in, n_out, dtype) * mask, "b": init.zeros((n_out,), dtype)}
            if i == 0 and self.cond_size:
                layer["W_cond"] = init.glorot(rng, self.cond_size, n_out, dtype)
            params[f"layer_{i}"] = layer
        return params

    def _check_inputs(self, params: Tree, x: Array, cond: Array | None) -> None:
        check_float("x", x, like=params["layer_0"]["W"])
        tail = self.x_tail
        if B.value(x).ndim < len(tail) or tuple(x.shape[-len(tail):]) != tail:
            raise ValueError(f"x must have shape (..., {', '.join(map(str, tail))}), got {tuple(x.shape)}")
        if self.cond_size and cond is None:
            raise ValueError(f"cond is required: this MADE has cond_size={self.cond_size}")
        if not self.cond_size and cond is not None:
            raise ValueError("cond must be None: this MADE has cond_size=0")
        if cond is not None:
            check_float("cond", cond, like=params["layer_0"]["W"])
            check_shape("cond", cond, (*x.shape[: x.ndim - len(self.x_tail)], self.cond_size))

    def forward(self, params: Tree, x: Array, cond: Array | None = None, *, check: bool = True) -> tuple[Array, Any]:
        """x : (..., D) or (..., D, F), cond : (..., C) or None -> out : (..., D, P) and a cache.

        x and cond are checked unless ``check`` is False (a flow layer that checked them at its own entry)."""
        if check:
            self._check_inputs(params, x, cond)
        masks = self._masks_for(B.value(params["layer_0"]["W"]).dtype)
        lead = tuple(x.shape[: x.ndim - len(self.x_tail)])
        h, layers = x.reshape(-1, len(self.degrees[0])), []
        c = cond.reshape(-1, self.cond_size) if self.cond_size else None
        for i, mask in enumerate(masks):
            p = params[f"layer_{i}"]
            W = p["W"] * mask
            a = h @ W + p["b"]
            if i == 0 and self.cond_size:
                a = a + c @ p["W_cond"]
            act_cache = None
            if i < self.num_layers - 1:
                a, act_cache = self.act_forward(a)
            layers.append((h, W, act_cache))
            h = a
        out = h.reshape(*lead, self.dim, self.params_per_dim)
        return out, (masks, layers, c, lead)

    def backward(self, params: Tree, cache: Any, dout: Array) -> tuple[Tree, Array, Array | None]:
        """dout : (..., D, P) -> (grads, dx : x's shape, dcond : (..., C) or None).

        Weight gradients are masked like the weights, dW_l = (h_l^T da_l) . M_l, so the masked
        entries never move.
        """
        masks, layers, c, lead = cache
        check_shape("dout", dout, (*lead, self.dim, self.params_per_dim))
        da = dout.reshape(-1, self.dim * self.params_per_dim)
        grads: Tree = {}
        dcond = None
        for i in range(self.num_layers - 1, -1, -1):
            h, W, _ = layers[i]
            grads[f"layer_{i}"] = {"W": (h.T @ da) * masks[i], "b": da.sum(axis=0)}
            if i == 0 and self.cond_size:
                grads["layer_0"]["W_cond"] = c.T @ da
                dcond = (da @ params["layer_0"]["W_cond"].T).reshape(*lead, self.cond_size)
            dh = da @ W.T
            if i > 0:
                da = self.act_backward(layers[i - 1][2], dh)
        grads = {f"layer_{i}": grads[f"layer_{i}"] for i in range(self.num_layers)}
        return grads, dh.reshape(*lead, *self.x_tail), dcond
