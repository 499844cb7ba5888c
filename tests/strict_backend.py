"""The "strict" backend: a stand-in for CuPy that runs on the CPU and fails where CuPy would.

CuPy keeps device memory apart from host memory. ``numpy.asarray(cupy_array)`` raises TypeError,
and so does a ``numpy.ndarray`` operand in CuPy arithmetic; Python and NumPy scalars mix freely;
``.get()`` is the one way back to the host. NumPy forgives all of this, so code that mixes a host
array into device arithmetic passes every test on NumPy and breaks on the first GPU it meets. Here
those mistakes fail on a CPU, with CuPy's own errors (CuPy 13 and 14 alike):

- ``ndarray`` wraps a ``numpy.ndarray``. It is no subclass of it, because NumPy converts its
  subclasses silently. ``__array__`` raises CuPy's "Implicit conversion to a NumPy array is not
  allowed" TypeError, so ``numpy.asarray(a)`` and every NumPy routine that converts its argument
  fail. Operators and NumPy ufuncs reach ``__array_ufunc__``, which refuses ``numpy.ndarray``
  operands with CuPy's "Unsupported type <class 'numpy.ndarray'>" TypeError and accepts Python and
  NumPy scalars. ``get()`` copies to the host. Only the methods ``cupy.ndarray`` has exist.
- ``module`` stands for ``cupy``: exactly the names of CuPy's documented API (tests/cupy_api.py)
  that NumPy has too, each running NumPy's routine on the arrays inside, refusing host arrays, and
  wrapping results, scalars included, as CuPy returns 0-d arrays. ``asarray`` and ``array`` take
  host data: the explicit way in. Ufunc methods exist only where CuPy implements them.
- ``module.random.default_rng(seed)`` gives a generator with the methods of
  ``cupy.random.Generator`` only (no ``normal``, ``choice`` or ``permutation``). It draws NumPy's
  numbers for the same seed, so results match the NumPy backend bit for bit.
- As in CuPy, indices may be host arrays or lists (CuPy copies them to the device), and so may the
  values written through an index array; a host array written into a slice fails as in CuPy.

``register()`` makes ``B.set_backend("strict")`` select it; tests/conftest.py calls it, and
``python -m pytest --backend strict`` runs the backend-agnostic tests on it. It never joins
``B.BACKENDS``: it proves the CuPy path, it is no backend to compute with.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from mini_flows import backend as B
from tests import cupy_api

NAME = "strict"
IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")
_PYTHON_SCALARS = (bool, int, float, complex)
_COMPARISONS = frozenset(("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"))


def unsupported(x: Any) -> TypeError:
    """CuPy's error for an operand it cannot take, e.g. a ``numpy.ndarray``."""
    return TypeError(f"Unsupported type {type(x)}")


def _unwrap(x: Any, host_ok: bool = False) -> Any:
    """The NumPy arrays inside device arrays, in lists and tuples too. A host array raises, as in
    CuPy, unless ``host_ok`` (for the calls that copy host data in)."""
    kind = type(x)
    if kind is ndarray:
        return x._a
    if kind is tuple or kind is list:
        return kind(_unwrap(item, host_ok) for item in x)
    if isinstance(x, numpy.ndarray) and not host_ok:
        raise unsupported(x)
    return x


def _from_host(x: Any) -> Any:
    """``_unwrap`` with host arrays welcome."""
    return _unwrap(x, host_ok=True)


def _wrap(x: Any) -> Any:
    """NumPy results as device arrays: scalars become 0-d arrays, as CuPy returns them."""
    if isinstance(x, numpy.ndarray):
        return ndarray(x)
    if isinstance(x, numpy.generic):
        return ndarray(numpy.asarray(x))
    if isinstance(x, tuple):
        items = [_wrap(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(function: Callable, args: tuple, kwargs: dict, unwrap: Callable[[Any], Any] = _unwrap) -> Any:
    """``function`` (a NumPy routine or method) applied to device arrays, giving device arrays."""
    return _wrap(function(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()}))


def _on_device(function: Callable, unwrap: Callable[[Any], Any] = _unwrap) -> Callable:
    """``function`` (a NumPy routine or method) taking and returning device arrays."""
    return lambda *args, **kwargs: _call(function, args, kwargs, unwrap)


def _index(key: Any) -> Any:
    """An index with device arrays unwrapped; host index arrays and lists pass, as CuPy copies them."""
    return tuple(map(_from_host, key)) if isinstance(key, tuple) else _from_host(key)


def _is_advanced(key: Any) -> bool:
    return any(isinstance(k, (list, numpy.ndarray, ndarray)) for k in (key if isinstance(key, tuple) else (key,)))


class ndarray(NDArrayOperatorsMixin):
    """A device array of the strict backend: a ``numpy.ndarray`` that never leaves implicitly.

    Operators come from ``NDArrayOperatorsMixin``, which sends them through ``__array_ufunc__``.
    """

    __slots__ = ("_a",)

    def __init__(self, a: numpy.ndarray) -> None:
        self._a = a

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, np_ufunc: numpy.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        own = getattr(module, np_ufunc.__name__, None)
        if not isinstance(own, ufunc):
            return NotImplemented
        for x in inputs:  # what cupy.ndarray.__array_ufunc__ lets through; host arrays then raise
            if not (type(x) in _PYTHON_SCALARS or isinstance(x, (ndarray, numpy.ndarray, numpy.generic))):
                return NotImplemented
        if np_ufunc.__name__ in _COMPARISONS:  # CuPy compares with 0-d host arrays as with scalars
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x for x in inputs)
        return (own if method == "__call__" else getattr(own, method))(*inputs, **kwargs)

    def __array_function__(self, func: Callable, types: Any, args: Any, kwargs: Any) -> Any:
        namespace = {"numpy": module, "numpy.linalg": module.linalg}.get(func.__module__)
        own = getattr(namespace, func.__name__, None)
        if own is None or not all(issubclass(t, (ndarray, numpy.ndarray)) for t in types):
            return NotImplemented  # NumPy then raises "no implementation found", as with CuPy
        return own(*args, **kwargs)

    def get(self) -> numpy.ndarray:
        """A host copy: the one way out, as ``cupy.ndarray.get()``."""
        return self._a.copy()

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, a tuple of ints (host data, as on CuPy)."""
        return self._a.shape

    @property
    def dtype(self) -> numpy.dtype:
        """The NumPy dtype."""
        return self._a.dtype

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self._a.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self._a.size

    @property
    def T(self) -> ndarray:  # noqa: N802 (NumPy's name)
        """The transpose, a view."""
        return ndarray(self._a.T)

    def __getattr__(self, name: str) -> Any:
        if name not in cupy_api.NDARRAY_ATTRIBUTES:
            raise AttributeError(f"'{NAME}.ndarray' object has no attribute {name!r} (cupy.ndarray has none)")
        attribute = getattr(self._a, name)
        return _on_device(attribute) if callable(attribute) else _wrap(attribute)

    def __getitem__(self, key: Any) -> ndarray:
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if not _is_advanced(key):  # CuPy fills a slice from device arrays and scalars only
            if isinstance(value, numpy.ndarray) and value.ndim:
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            if isinstance(value, (list, tuple)):
                raise unsupported(value)
        self._a[_index(key)] = _from_host(value)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __bool__(self) -> bool:
        return bool(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __format__(self, spec: str) -> str:
        return format(self._a, spec)

    def __str__(self) -> str:
        return str(self._a)

    def __repr__(self) -> str:
        return f"{NAME}.{self._a!r}"


class ufunc:
    """A NumPy ufunc as CuPy offers it: refuses host arrays and lists; ``reduce``, ``accumulate``,
    ``reduceat`` and ``at`` only for the ufuncs CuPy implements them for (``outer`` for all)."""

    def __init__(self, np_ufunc: numpy.ufunc) -> None:
        self._ufunc = np_ufunc
        self.__name__ = np_ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for x in args:
            if isinstance(x, list):
                raise unsupported(x)
        return _call(self._ufunc, args, kwargs)

    def __getattr__(self, method: str) -> Callable:
        if method not in cupy_api.UFUNC_METHODS:
            return getattr(self._ufunc, method)  # nin, nout, identity, ...
        if self.__name__ not in cupy_api.UFUNC_METHODS[method]:
            raise NotImplementedError(f"`{self.__name__}.{method}` is not supported yet")
        # CuPy copies host operands of outer and host indices and values of at to the device
        unwrap = _from_host if method in ("outer", "at") else _unwrap
        return _on_device(getattr(self._ufunc, method), unwrap)


class Generator:
    """``cupy.random.Generator`` on the CPU: NumPy's generator for the same seed, with CuPy's
    methods only, returning device arrays (0-d where ``size`` is None, as CuPy does)."""

    def __init__(self, seed: Any = None) -> None:
        self._rng = numpy.random.default_rng(seed)

    def integers(self, low: Any, high: Any = None, size: Any = None, dtype: Any = numpy.int64,
                 endpoint: bool = False) -> ndarray:
        """Integers in [low, high); CuPy takes scalar bounds only (it calls int() on them)."""
        high = None if high is None else int(high)
        return ndarray(numpy.asarray(self._rng.integers(int(low), high, size=size, dtype=dtype, endpoint=endpoint)))

    def __getattr__(self, name: str) -> Callable:
        if name not in cupy_api.GENERATOR_METHODS:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        draw = _on_device(getattr(self._rng, name))
        return lambda *args, **kwargs: asarray(draw(*args, **kwargs))


def asarray(a: Any, dtype: Any = None) -> ndarray:
    """Host data (or a device array) on the device, as ``cupy.asarray``: the explicit way in."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == dtype):
        return a
    return array(a, dtype)


def array(obj: Any, dtype: Any = None) -> ndarray:
    """A device copy of host data or of a device array, as ``cupy.array``."""
    return ndarray(numpy.array(_from_host(obj), dtype=dtype))


def _namespace(name: str, source: types.ModuleType, names: frozenset[str]) -> types.ModuleType:
    """A module holding ``source``'s objects for ``names`` (those it has), seen as CuPy's."""
    space = types.ModuleType(name)
    for attribute in sorted(names):
        obj = getattr(source, attribute, None)
        if isinstance(obj, numpy.ufunc):
            obj = ufunc(obj)
        elif callable(obj) and not isinstance(obj, type):
            obj = functools.wraps(obj)(_on_device(obj))
        if obj is not None or attribute == "newaxis":
            setattr(space, attribute, obj)
    return space


module = _namespace(NAME, numpy, cupy_api.NAMESPACES[""])
"""The stand-in for ``cupy``."""
module.ndarray = ndarray
module.ufunc = ufunc
module.asarray = asarray
module.array = array
module.linalg = _namespace(f"{NAME}.linalg", numpy.linalg, cupy_api.LINALG)
module.random = types.ModuleType(f"{NAME}.random")
module.random.default_rng = Generator
module.random.Generator = Generator


def register() -> None:
    """Make ``B.set_backend("strict")`` select this module (it stays out of ``B.BACKENDS``)."""
    B._register_stand_in(NAME, module)
