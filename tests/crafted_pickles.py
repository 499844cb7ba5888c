"""Pickles assembled opcode by opcode, for the loader tests and their fuzzing: files no pickler
writes (a dtype whose state claims an object field, a huge shape in a few bytes, a Python 2
string, a tuple as a set member), from a small tree of Python values, ``Global`` names,
``Reduce`` calls, ``SetOf`` and ``DictOf`` containers and ``Raw`` opcodes.

    assemble({"train": [[Reduce(Global("numpy", "dtype"), ("i8", False, True), STATE)]]})
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, NamedTuple

NO_STATE = object()


class Global(NamedTuple):
    """GLOBAL: the object ``module.name``, looked up by the unpickler's ``find_class``."""

    module: str
    name: str


class Reduce(NamedTuple):
    """REDUCE: ``func(*args)``, then BUILD with ``state`` unless it is NO_STATE."""

    func: Any
    args: Any
    state: Any = NO_STATE


class Raw(NamedTuple):
    """Opcodes written as they are."""

    data: bytes


class SetOf(NamedTuple):
    """EMPTY_SET, then ADDITEMS with ``items``, which need not be hashable in this process."""

    items: tuple


class DictOf(NamedTuple):
    """EMPTY_DICT, then SETITEMS with the (key, value) ``pairs``, whatever the keys are."""

    pairs: tuple


class Py2Str(NamedTuple):
    """SHORT_BINSTRING: a Python 2 ``str`` (bytes), which ``encoding="latin1"`` reads as text."""

    data: bytes


def assemble(value: Any, protocol: int = 2) -> bytes:
    """PROTO ``protocol``, the opcodes building ``value``, STOP."""
    return b"\x80" + bytes([protocol]) + emit(value) + b"."


def emit(value: Any) -> bytes:
    """The opcodes that push ``value`` onto the unpickler's stack."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Global):
        return b"c" + value.module.encode() + b"\n" + value.name.encode() + b"\n"
    if isinstance(value, Reduce):
        call = emit(value.func) + emit(value.args) + b"R"
        return call if value.state is NO_STATE else call + emit(value.state) + b"b"
    if isinstance(value, SetOf):
        return b"\x8f(" + b"".join(map(emit, value.items)) + b"\x90"
    if isinstance(value, DictOf):
        return b"}(" + b"".join(emit(k) + emit(v) for k, v in value.pairs) + b"u"
    if isinstance(value, Py2Str):
        return b"U" + bytes([len(value.data)]) + value.data
    if value is None or isinstance(value, bool):
        return {None: b"N", True: b"\x88", False: b"\x89"}[value]
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return b"J" + struct.pack("<i", value)
        digits = pickle.encode_long(value)
        return b"\x8b" + struct.pack("<i", len(digits)) + digits
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, str):
        text = value.encode("utf-8", "surrogatepass")
        return b"X" + struct.pack("<I", len(text)) + text
    if isinstance(value, bytes):
        return b"B" + struct.pack("<I", len(value)) + value
    if isinstance(value, bytearray):
        return b"\x96" + struct.pack("<Q", len(value)) + bytes(value)
    if isinstance(value, tuple):
        return b"(" + b"".join(map(emit, value)) + b"t"
    if isinstance(value, list):
        return b"](" + b"".join(map(emit, value)) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(emit(k) + emit(v) for k, v in value.items()) + b"u"
    if isinstance(value, frozenset):
        return b"(" + b"".join(map(emit, value)) + b"\x91"
    if isinstance(value, set):
        return b"\x8f(" + b"".join(map(emit, value)) + b"\x90"
    raise TypeError(f"cannot assemble a {type(value).__name__}")


def dtype(name: str, order: str = "<", subarray: Any = None, names: Any = None, fields: Any = None,
          itemsize: int = -1, alignment: int = -1, flags: int = 0) -> Reduce:
    """``numpy.dtype(name, False, True)`` with the state NumPy pickles, any part of it forged."""
    return Reduce(Global("numpy", "dtype"), (name, False, True),
                  (3, order, subarray, names, fields, itemsize, alignment, flags))


def array(shape: tuple[int, ...], dtype_: Any, data: Any, fortran: bool = False,
          core: str = "numpy._core.multiarray") -> Reduce:
    """An array as NumPy pickles it: ``_reconstruct(ndarray, (0,), b"b")``, then its state."""
    return Reduce(Global(core, "_reconstruct"), (Global("numpy", "ndarray"), (0,), b"b"),
                  (1, shape, dtype_, fortran, data))


OBJECT_FIELD_DTYPE = dtype("V8", "|", None, ("a",), {"a": (dtype("O", "|", flags=63), 0)}, 8, 1, 0)
"""Issue 24's recipe: a void dtype whose state gives it an object field "a" while its flags (0)
say it holds no objects; NumPy then reads an array's bytes as object pointers."""
