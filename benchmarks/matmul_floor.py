"""The matrix-product floor of a NumPy training step: the time of its matrix products alone.

``recorded_matmuls(step)`` runs the step once on arrays that log every ``matmul`` (the ``@``
operator included) they take part in: the operands' and the result's shapes, dtype, address, and
whether each is a transposed view (its last two axes swapped). ``matmul_floor(products)`` returns a call that
replays those products, the same count, shapes and order, on preallocated random arrays into
preallocated outputs, one array for each address, shape and layout the step read (and one for each
it wrote): a weight matrix the step reads at every time step is one array there too, so the
floor's caches hold what the step's would. A block's time over this floor is what its elementwise
work, Python calls and allocations cost.

The log follows values: an input or parameter given as ``Logged`` passes that type on to whatever
NumPy computes from it (``__array_ufunc__``, ``__array_function__`` and the ndarray methods), and
while the step runs NumPy's array makers (``empty``, ``zeros``, ``ones``, ``full``, ``arange``)
return ``Logged`` arrays too, so that buffers the step preallocates and fills through ``out=``
log their products as well.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np


class Operand(NamedTuple):
    """An array a matmul read or wrote: its address, shape and strides (which tell it apart from
    other arrays), whether it is a transposed view (last two axes swapped) and its dtype."""

    address: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    transposed: bool
    dtype: np.dtype


class Product(NamedTuple):
    a: Operand
    b: Operand
    out: Operand


def _operand(a: np.ndarray) -> Operand:
    transposed = a.ndim >= 2 and abs(a.strides[-1]) > abs(a.strides[-2])
    return Operand(a.__array_interface__["data"][0], a.shape, a.strides, transposed, a.dtype)


def _plain(a: Any) -> Any:
    if isinstance(a, Logged):
        return a.view(np.ndarray)
    if isinstance(a, (tuple, list)):
        return type(a)(_plain(v) for v in a)
    return a


def _logged(a: Any) -> Any:
    if isinstance(a, np.ndarray) and not isinstance(a, Logged):
        return a.view(Logged)
    if isinstance(a, (tuple, list)):
        return type(a)(_logged(v) for v in a)
    return a


class Logged(np.ndarray):
    """An ndarray whose matmuls append a ``Product`` to ``Logged.products``."""

    products: list[Product] = []

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain_inputs = _plain(inputs)
        if "out" in kwargs:
            kwargs["out"] = _plain(kwargs["out"])
        result = getattr(ufunc, method)(*plain_inputs, **kwargs)
        if ufunc is np.matmul and method == "__call__":
            a, b = (np.asarray(v) for v in plain_inputs[:2])
            Logged.products.append(Product(_operand(a), _operand(b), _operand(np.asarray(result))))
        return _logged(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _logged(func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))


MAKERS = ("empty", "zeros", "ones", "full", "arange")


def recorded_matmuls(step: Callable[..., Any], *arrays: np.ndarray) -> list[Product]:
    """The products of one ``step(*arrays)``, with ``arrays`` (inputs, parameters; nested dicts of
    arrays too) passed as ``Logged`` views, in the order the step takes them."""

    def log(a: Any) -> Any:
        return {k: log(v) for k, v in a.items()} if isinstance(a, dict) else _logged(a)

    def logging(maker: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kwargs: _logged(maker(*args, **kwargs))

    makers = {name: getattr(np, name) for name in MAKERS}
    Logged.products = []
    try:
        for name, maker in makers.items():
            setattr(np, name, logging(maker))
        step(*(log(a) for a in arrays))
    finally:
        for name, maker in makers.items():
            setattr(np, name, maker)
    products, Logged.products = Logged.products, []
    return products


def matmul_floor(products: list[Product], seed: int = 0) -> Callable[[], None]:
    """A call that runs ``products`` in order on preallocated random operands, into preallocated
    outputs: one array for each ``Operand`` the step used."""
    rng = np.random.default_rng(seed)
    arrays: dict[tuple[bool, Operand], np.ndarray] = {}

    def array(operand: Operand, written: bool) -> np.ndarray:
        """Outputs are arrays apart from the operands, so no product reads another's result: the
        replay, run again and again, would grow its values into overflow."""
        if (written, operand) not in arrays:
            if operand.transposed:
                swapped = (*operand.shape[:-2], operand.shape[-1], operand.shape[-2])
                a = np.swapaxes(rng.standard_normal(swapped).astype(operand.dtype), -1, -2)
            else:
                a = rng.standard_normal(operand.shape).astype(operand.dtype)
            arrays[(written, operand)] = a
        return arrays[(written, operand)]

    triples = [(array(p.a, False), array(p.b, False), array(p.out, True)) for p in products]

    def floor() -> None:
        for a, b, out in triples:
            np.matmul(a, b, out=out)

    return floor
