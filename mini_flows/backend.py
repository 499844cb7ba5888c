"""The one place that knows NumPy from CuPy (and from autograd.numpy, for gradient checks).

Model code never imports an array library. It asks for the module at call time::

    from mini_flows import backend as B
    xp = B.xp()
    y = xp.tanh(x)

so the same function runs on NumPy, on CuPy, and, inside ``use_autograd()``, on autograd's
NumPy wrapper, which lets autograd differentiate the very forward code whose hand-written
backward pass we want to check.

The default backend is "numpy", or the value of the environment variable MINI_FLOWS_BACKEND
where it is set and not empty, resolved on first use.

Random numbers come from explicit generator objects, never from global state:
``host_rng(seed)`` (a ``numpy.random.Generator``, used for parameter initialisation so a seed
gives the same parameters on every backend) and ``rng(seed)`` (a generator of the current
backend, for noise drawn during training and sampling).
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType
from typing import Any, Iterator

import numpy

from mini_flows.files import write_atomically

Array = Any
"""An array of the current backend: ``numpy.ndarray``, ``cupy.ndarray`` or an autograd box."""

BACKENDS = ("numpy", "cupy")
_CUPY_HINT = (
    "install CuPy with the extra for your CUDA version: "
    "pip install 'mini-flows[cuda12]' (CUDA 12) or pip install 'mini-flows[cuda13]' (CUDA 13)"
)


class BackendUnavailableError(RuntimeError):
    """The requested array library is not installed or has no device to run on."""


_name: str | None = None
_module: ModuleType | None = None
_autograd_depth = 0
_stand_ins: dict[str, ModuleType] = {}


def _register_stand_in(name: str, module: ModuleType) -> None:
    """Make ``set_backend(name)`` select ``module``, a CPU stand-in for CuPy that the tests register
    (tests/strict_backend.py). It never joins ``BACKENDS``, the list users choose from. Like
    ``cupy`` it must offer the array functions, ``ndarray`` (whose ``get()`` copies to the host),
    ``asarray`` (host data onto the device) and ``random.default_rng``."""
    _stand_ins[name] = module


def _load(name: str) -> ModuleType:
    if name == "numpy":
        return numpy
    if name in _stand_ins:
        return _stand_ins[name]
    if name == "cupy":
        try:
            import cupy
        except ImportError as err:
            raise BackendUnavailableError(f"backend 'cupy' needs CuPy, which is not installed; {_CUPY_HINT}") from err
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as err:  # CUDARuntimeError, or a driver that fails to load
            raise BackendUnavailableError(f"backend 'cupy': CuPy is installed but no CUDA GPU is usable ({err})") from err
        if count == 0:
            raise BackendUnavailableError("backend 'cupy': CuPy is installed but no CUDA GPU is present")
        return cupy
    raise ValueError(f"unknown backend {name!r}; valid backends are {', '.join(map(repr, BACKENDS))}")


def set_backend(name: str) -> None:
    """Select the array library for all model code: "numpy" or "cupy".

    Raises ValueError for an unknown name and BackendUnavailableError (naming the pip extra to
    install) where CuPy or a GPU is missing.
    """
    global _name, _module
    if not isinstance(name, str):
        raise ValueError(f"backend name must be a string, got {type(name).__name__}; valid backends are {BACKENDS}")
    _module = _load(name)
    _name = name


def unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run here (the BackendUnavailableError's message), or None where
    it can. The current backend is left as it was."""
    try:
        with use_backend(name):
            return None
    except BackendUnavailableError as err:
        return str(err)


def get_backend() -> str:
    """The name of the current backend, "numpy" or "cupy"."""
    if _name is None:
        set_backend(os.environ.get("MINI_FLOWS_BACKEND") or "numpy")  # set but empty: as if unset
    return _name  # type: ignore[return-value]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block of code on another backend, restoring the previous one afterwards."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


@contextlib.contextmanager
def use_autograd() -> Iterator[None]:
    """Run model code on ``autograd.numpy`` so that autograd can differentiate it.

    For tests: autograd is the oracle the hand-written backward passes are checked against.
    Only NumPy arrays can be traced, so this needs the "numpy" backend.
    """
    global _autograd_depth
    if get_backend() != "numpy":
        raise BackendUnavailableError("autograd differentiates NumPy arrays only; switch to the 'numpy' backend")
    _autograd_depth += 1
    try:
        yield
    finally:
        _autograd_depth -= 1


def xp() -> ModuleType:
    """The array module model code should use right now."""
    if _autograd_depth:
        import autograd.numpy

        return autograd.numpy
    get_backend()
    return _module  # type: ignore[return-value]


def value(a: Array) -> Array:
    """The plain array inside an autograd box (the array itself when not tracing)."""
    while hasattr(a, "_value") and type(a).__module__.startswith("autograd"):
        a = a._value
    return a


def to_numpy(a: Array) -> numpy.ndarray:
    """Copy an array of any backend (or an autograd box) to a host ``numpy.ndarray``."""
    a = value(a)
    if type(a).__module__.startswith("cupy") or isinstance(a, tuple(m.ndarray for m in _stand_ins.values())):
        return a.get()
    return numpy.asarray(a)


def asarray(a: Any, dtype: Any = None) -> Array:
    """Move host data (lists, NumPy arrays) onto the current backend."""
    if get_backend() != "numpy":
        return _module.asarray(a, dtype=dtype)  # type: ignore[union-attr]
    return numpy.asarray(to_numpy(a), dtype=dtype)


def _check_seed(seed: Any) -> None:
    """ValueError unless seed is None or an integer >= 0 (Python or NumPy, not bool)."""
    ok = seed is None or (isinstance(seed, (int, numpy.integer)) and not isinstance(seed, bool) and seed >= 0)
    if not ok:
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")


def host_rng(seed: int | None) -> numpy.random.Generator:
    """A NumPy generator for parameter initialisation: the same seed gives the same parameters
    whichever backend they are later moved to with ``asarray``."""
    _check_seed(seed)
    return numpy.random.default_rng(seed)


def rng(seed: int | None) -> Any:
    """A random generator of the current backend (``numpy.random.Generator`` or
    ``cupy.random.Generator``), for noise drawn during training and sampling."""
    _check_seed(seed)
    get_backend()
    return _module.random.default_rng(seed)  # type: ignore[union-attr]


def floating_dtypes() -> tuple[Any, ...]:
    """The floating dtypes every block supports."""
    return (numpy.dtype("float32"), numpy.dtype("float64"))


def float_dtype(dtype: Any) -> numpy.dtype:
    """``dtype`` as a NumPy dtype after checking it is float32 or float64 (ValueError otherwise)."""
    try:
        resolved = numpy.dtype(dtype) if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved is None or resolved not in floating_dtypes():  # (dtype(None) would be float64)
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


def is_floating(a: Array) -> bool:
    """Whether an array (or box) holds float32 or float64 values."""
    return numpy.dtype(value(a).dtype) in floating_dtypes()


def is_integer(a: Array) -> bool:
    """Whether an array (or box) holds integer values."""
    return numpy.issubdtype(numpy.dtype(value(a).dtype), numpy.integer)


def save_npz(path: Any, arrays: dict[str, Array]) -> None:
    """Write named arrays of any backend to an uncompressed ``.npz`` file at exactly ``path``
    (no suffix added), bit for bit.

    All or nothing: the arrays are copied to the host first, then written to a temporary file in
    the same folder, which is renamed over ``path`` only once complete, so a failure at any point
    leaves a file already at ``path`` as it was.
    """
    host = {name: to_numpy(a) for name, a in arrays.items()}
    write_atomically(path, lambda file: numpy.savez(file, **host))


def load_npz(path: Any) -> dict[str, Array]:
    """Read an ``.npz`` file written by ``save_npz`` onto the current backend, keeping dtypes.

    Raises FileNotFoundError for a missing file and ValueError naming ``path`` for one that is
    not a complete ``.npz`` of arrays of booleans or numbers (junk, truncated, damaged, or holding
    pickled objects, strings or records) under names that print (no newline in an error message):
    the file is parsed on the host first, and any failure of that parse, whatever its kind, is
    this ValueError, in one line.
    """
    try:
        data = numpy.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("it holds a single array, not named arrays")
        with data:
            host = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except Exception as err:  # zipfile, zlib and NumPy's header parser fail in many ways on a damaged file
        reason = "it holds pickled objects, which are never loaded" if "allow_pickle" in str(err) else \
            " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"{os.fspath(path)} is not a readable .npz of arrays: {reason}") from None
    for name, a in host.items():
        if not name.isprintable():
            raise ValueError(f"{os.fspath(path)} is not a readable .npz of arrays: the name {name!r} holds "
                             "characters that do not print")
        if a.dtype.kind not in "biufc":
            raise ValueError(f"{os.fspath(path)} is not a readable .npz of arrays: {name} holds {a.dtype}, "
                             "not booleans or numbers")
    return {name: asarray(a) for name, a in host.items()}


def synchronize() -> None:
    """Wait until the GPU has finished queued work (nothing to wait for on NumPy)."""
    if get_backend() == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def wall_seconds(fn: Any) -> float:
    """Wall time of ``fn()``, synchronizing before and after so the clock measures finished work."""
    import time

    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start
