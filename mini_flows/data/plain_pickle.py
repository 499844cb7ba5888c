"""Reading a pickle from anywhere as plain data: nothing it names is run, and no crafted file can
crash the process.

An ordinary ``pickle.load`` runs whatever code a pickle names. Allowing NumPy's own
reconstructors is not safe either: they trust the bytes they are given, so a pickle can build a
dtype holding an object field whose flags deny it, and NumPy then reads the array's bytes as
pointers (a segmentation fault). ``load_plain`` builds only

- dicts, lists, tuples, sets, frozensets, numbers, strings and bytes (the opcodes that need no
  lookup, and ``set``/``frozenset``, which Python 2 pickles name);
- for a NumPy array of booleans, integers or floats, the nested list of its values as Python
  numbers (a ``PickledArray``, what ``ndarray.tolist()`` gives), and for a NumPy scalar its
  Python number. Its dtype must be a plain one (kinds b, i, u, f: no fields, no sub-array, no
  objects), and the pickle must hold exactly its bytes, so a 40-byte file cannot ask for a
  terabyte. NumPy never sees anything but checked bytes and a dtype built from a name such as
  "<i8";
- bytes through ``_codecs.encode(text, "latin1")`` and ``bytes()``, as protocols 0 to 2 store them.

Anything else a pickle names (``os.system``, a class with ``__reduce__``) is refused before it is
called. Dict keys and set members must be strings, bytes or numbers of at most 64 bits: hashing
a tuple nested a million deep overflows CPython's C stack, whatever built the tuple, and a huge
key hashed again and again would hang. That check needs the pure-Python unpickler
(``pickle._Unpickler``, whose opcodes a subclass can override): about a second for a 2.6 MB
pickle of 250,000 time steps, ten times the C unpickler's time.

Every failure, whatever raised it inside (a refused name, a malformed opcode stream, a TypeError
from a bad argument, a LookupError, a MemoryError), is one ValueError saying why.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import reprlib
import struct
from typing import Any, Callable, Iterable

import numpy as np

PLAIN_DTYPE = re.compile(r"[biuf][0-9]{1,2}")
"""The dtype names NumPy pickles plain dtypes by: 'b1', 'i8', 'u1', 'f4', 'f16' (kind and bytes)."""
BYTE_ORDERS = ("<", ">", "|", "=")
MAX_KEY_BITS = 64


class PickledDtype:
    """What ``numpy.dtype(name, align, copy)`` in a pickle becomes: the name and, once the pickle
    sets its state, the byte order; ``dtype()`` checks both and builds the NumPy dtype."""

    name: Any = None
    order: str = "="

    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        self.name = name

    def __setstate__(self, state: Any) -> None:
        # NumPy's state: (version, byte order, sub-array, names, fields, item size, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in BYTE_ORDERS
                and all(part is None for part in state[2:5])):
            raise ValueError("it holds a dtype with fields, a sub-array or an unknown state; only booleans, "
                             "integers and floats are read")
        self.order = state[1]

    def dtype(self) -> np.dtype:
        """The NumPy dtype, or ValueError unless it is a plain boolean, integer or float one."""
        if not (isinstance(self.name, str) and PLAIN_DTYPE.fullmatch(self.name)):
            raise ValueError(f"it holds an array of dtype {short_repr(self.name)}; only booleans, integers "
                             "and floats are read")
        try:
            return np.dtype(self.name).newbyteorder(self.order)
        except TypeError:
            raise ValueError(f"it holds an array of dtype {self.name!r}, which NumPy does not know") from None


class PickledArray(list):
    """What a pickled NumPy array becomes: the nested list of its values, filled in when the
    pickle sets the array's state (shape, dtype, Fortran order, bytes) and that state checks out."""

    def __init__(self) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # NumPy's state starts with a version number (1); very old pickles lack it
        if not (isinstance(state, tuple) and len(state) == 4):
            raise ValueError("it holds an array whose state is not (shape, dtype, Fortran order, bytes)")
        shape, dtype, fortran, data = state
        self[:] = _values(data, dtype, shape, "F" if fortran else "C")


def _values(data: Any, dtype: Any, shape: Any, order: Any) -> list[Any]:
    """The values of an array of ``shape`` and ``dtype`` (a ``PickledDtype``) stored as ``data``,
    as nested lists of Python numbers; ValueError unless everything checks out."""
    if not isinstance(dtype, PickledDtype):
        raise ValueError(f"it holds an array whose dtype is a {type(dtype).__name__}")
    dtype = dtype.dtype()
    if isinstance(data, str):
        data = data.encode("latin1")  # a Python 2 str, decoded with encoding="latin1"
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"it holds an array whose data is a {type(data).__name__}, not bytes")
    sizes = isinstance(shape, tuple) and all(type(n) is int and 0 <= n < 2**63 for n in shape)
    if not (sizes and 1 <= len(shape) <= 32):
        raise ValueError(f"it holds an array of shape {short_repr(shape)}; a shape is 1 to 32 sizes in [0, 2**63)")
    if order not in ("C", "F"):
        raise ValueError(f"it holds an array of order {short_repr(order)}, neither 'C' nor 'F'")
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"it holds an array of shape {short_repr(shape)} and dtype {dtype} in {len(data)} "
                         "bytes, which is not its size")
    return np.frombuffer(data, dtype).reshape(shape, order=order).tolist()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> PickledArray:
    """numpy.core.multiarray._reconstruct: an array of shape (0,), whose state the pickle sets next
    (NumPy always writes (0,); a pickle that sets no state leaves the array empty, as NumPy does)."""
    if cls is not PickledArray:
        raise ValueError(f"it reconstructs a {type(cls).__name__} through NumPy's _reconstruct, not an array")
    if shape != (0,):
        raise ValueError(f"it reconstructs an array of shape {short_repr(shape)} before setting its state; "
                         "NumPy writes (0,)")
    return PickledArray()


def _frombuffer(data: Any, dtype: Any, shape: Any, order: Any) -> PickledArray:
    """numpy.core.numeric._frombuffer, how protocol 5 stores a contiguous array."""
    array = PickledArray()
    array[:] = _values(data, dtype, shape, order)
    return array


def _scalar(dtype: Any, data: Any) -> Any:
    """numpy.core.multiarray.scalar: a NumPy scalar, as its Python number."""
    return _values(data, dtype, (1,), "C")[0]


def _encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """_codecs.encode(text, "latin1"), how protocols 0 to 2 store bytes; no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"it encodes a {type(text).__name__} with the codec {short_repr(encoding)}; only "
                         "text to latin1 bytes is read")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    """bytes(), how protocols 0 to 2 store empty bytes; never bytes(n), which allocates n bytes."""
    if args:
        raise ValueError("it calls bytes with arguments; only bytes() is read")
    return b""


def _key(value: Any) -> Any:
    """``value`` where it may be a dict key or set member, else ValueError."""
    if type(value) in (str, bytes, float, bool, type(None)):
        return value
    if type(value) is int and value.bit_length() <= MAX_KEY_BITS:
        return value
    raise ValueError(f"it holds a dict key or set member that is a {type(value).__name__}; only strings, bytes "
                     f"and numbers of at most {MAX_KEY_BITS} bits are read")


def _set(items: Iterable[Any] = ()) -> set[Any]:
    return {_key(item) for item in items}


def _frozenset(items: Iterable[Any] = ()) -> frozenset[Any]:
    return frozenset(_set(items))


_STAND_INS: dict[tuple[str, str], Any] = {
    **{(module, name): stand_in for module in ("builtins", "__builtin__")
       for name, stand_in in (("set", _set), ("frozenset", _frozenset), ("bytes", _bytes))},
    ("numpy", "ndarray"): PickledArray,
    ("numpy", "dtype"): PickledDtype,
    **{(f"numpy.{core}.multiarray", name): stand_in for core in ("core", "_core")
       for name, stand_in in (("_reconstruct", _reconstruct), ("scalar", _scalar))},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    ("_codecs", "encode"): _encode,
}
"""What each name a plain-data pickle may hold stands for: NumPy 1 pickles name numpy.core, NumPy 2
numpy._core."""


def _checking_keys(opcode: bytes, keys: Callable[[list[Any]], Iterable[Any]]) -> Callable[[Any], None]:
    """The unpickler's method for ``opcode``, run after checking ``keys(stack)`` with ``_key``."""
    load = pickle._Unpickler.dispatch[opcode[0]]

    def checked(unpickler: Any) -> None:
        for key in keys(unpickler.stack):
            _key(key)
        load(unpickler)
    return checked


def _bytearray8(unpickler: Any) -> None:
    """BYTEARRAY8 (protocol 5) without allocating the length it claims before reading: the pure-
    Python unpickler's own makes a zeroed bytearray of that length first, gigabytes for 10 bytes."""
    length, = struct.unpack("<Q", unpickler.read(8))
    data = unpickler.read(length)  # at most what the pickle holds
    if len(data) != length:
        raise pickle.UnpicklingError(f"it claims a bytearray of {length} bytes, more than it holds")
    unpickler.append(bytearray(data))


def _build(unpickler: Any) -> None:
    """BUILD (set the state of the object below the state on the stack), on arrays and dtypes only."""
    target = unpickler.stack[-2] if len(unpickler.stack) >= 2 else None
    if type(target) not in (PickledArray, PickledDtype):
        raise pickle.UnpicklingError(f"it sets the state of a {type(target).__name__}; only arrays and dtypes "
                                     "have one")
    pickle._Unpickler.load_build(unpickler)


class PlainDataUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with ``find_class`` answering only the names of ``_STAND_INS``,
    the opcodes that hash (building dicts and sets) checking their keys first, BUILD allowed only
    on the arrays and dtypes the stand-ins made, and BYTEARRAY8 reading before it allocates."""

    dispatch = {
        **pickle._Unpickler.dispatch,
        pickle.SETITEM[0]: _checking_keys(pickle.SETITEM, lambda stack: stack[-2:-1]),
        # since the mark, the stack holds key, value, key, value, ... for these two,
        pickle.SETITEMS[0]: _checking_keys(pickle.SETITEMS, lambda stack: stack[::2]),
        pickle.DICT[0]: _checking_keys(pickle.DICT, lambda stack: stack[::2]),
        # and the members for these
        pickle.ADDITEMS[0]: _checking_keys(pickle.ADDITEMS, lambda stack: stack),
        pickle.FROZENSET[0]: _checking_keys(pickle.FROZENSET, lambda stack: stack),
        pickle.BUILD[0]: _build,
        pickle.BYTEARRAY8[0]: _bytearray8,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _STAND_INS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {_short(f'{module}.{name}')}, which is not plain data; "
                                         "refused") from None


def load_plain(data: bytes) -> Any:
    """The plain data a pickle holds (see the module docstring); ValueError saying why for a pickle
    that is damaged or holds anything else. Python 2 pickles load too (``encoding="latin1"``)."""
    try:
        return PlainDataUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:  # a crafted pickle can make the unpickler raise any kind: each means unreadable
        if isinstance(err, EOFError):
            reason = "it ends before its STOP opcode"
        elif isinstance(err, (ValueError, pickle.UnpicklingError)):
            reason = str(err)
        else:
            kind = type(err).__name__ if type(err).__module__ == "builtins" else \
                f"{type(err).__module__}.{type(err).__name__}"
            reason = f"{kind}: {err}"
        raise ValueError(_short(" ".join(reason.split()), 300)) from err


class _BoundedRepr(reprlib.Repr):
    """``reprlib``'s bounded repr, which also shows an integer too long to print (Python refuses
    more than 4300 digits) by its size."""

    def repr_int(self, x: int, level: int) -> str:
        return super().repr_int(x, level) if x.bit_length() <= 256 else f"<a {x.bit_length()}-bit integer>"


def short_repr(value: Any) -> str:
    """A repr of ``value`` for an error message, at most about 80 characters whatever it is
    (``reprlib``'s limits: six levels deep, a few items of each container)."""
    return _short(_BOUNDED.repr(value))


_BOUNDED = _BoundedRepr()


def _short(text: str, limit: int = 80) -> str:
    """``text``, cut to ``limit`` characters with "..." where longer."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
