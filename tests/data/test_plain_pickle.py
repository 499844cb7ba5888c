"""The plain-data unpickler: NumPy arrays and scalars of plain dtypes come back as their Python
values under every protocol and from NumPy 1 and Python 2 pickles; anything else, and every
forged state, is one ValueError saying why."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from mini_flows.data.plain_pickle import load_plain
from tests.crafted_pickles import Global, Py2Str, Raw, Reduce, array, assemble, dtype

ARRAYS = [
    np.array([60, 64, 67]),
    np.array([[True, False], [False, True]]),
    np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
    np.arange(4, dtype=">i4"),
    np.array([0.5, -2.0], dtype=np.float16),
    np.zeros((0, 3), dtype=np.float32),
]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("values", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_plain_arrays_and_scalars_become_their_python_values(values, protocol):
    data = {"array": values, "scalar": values.dtype.type(1), "set": {60, 64}, "frozen": frozenset({"a"})}
    loaded = load_plain(pickle.dumps(data, protocol=protocol))
    assert loaded == {"array": values.tolist(), "scalar": 1, "set": {60, 64}, "frozen": frozenset({"a"})}


def test_numpy_1_and_python_2_pickles_load():
    """NumPy 1 names numpy.core; Python 2 stores bytes as str (read with encoding="latin1") and
    names __builtin__.set."""
    raw = np.array([60, 300], dtype="<i2").tobytes()
    old = array((2,), dtype("i2"), Py2Str(raw), core="numpy.core.multiarray")
    sets = Reduce(Global("__builtin__", "set"), ([60, 64],))
    assert load_plain(assemble([old, sets])) == [[60, 300], {60, 64}]


@pytest.mark.parametrize("values, reason", [
    (np.array([1, "a"], dtype=object), "only booleans, integers and floats are read"),
    (np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), "a dtype with fields"),
    (np.array(["ab"]), "dtype 'U2'; only booleans, integers and floats"),
    (np.array([1], dtype="datetime64[s]"), "dtype 'M8'"),
    (np.array([1 + 2j]), "dtype 'c16'"),
])
def test_arrays_of_other_dtypes_are_refused(values, reason):
    with pytest.raises(ValueError, match=reason):
        load_plain(pickle.dumps(values, protocol=2))


@pytest.mark.parametrize("crafted, reason", [
    (array((3,), dtype("i8"), b"\0" * 8), r"shape \(3,\) and dtype int64 in 8 bytes, which is not its size"),
    (array((2**40,), dtype("i1"), b""), r"shape \(1099511627776,\) and dtype int8 in 0 bytes"),
    (array((), dtype("i8"), b"\0" * 8), r"shape \(\); a shape is 1 to 32 sizes"),
    (array((-1,), dtype("i8"), b""), r"shape \(-1,\)"),
    (array((1,), dtype("V8", "|", (dtype("i4"), (2,))), b"\0" * 8), "a dtype with fields, a sub-array"),
    (array((1,), dtype("i8", "?"), b"\0" * 8), "unknown state"),
    (array((1,), "i8", b"\0" * 8), "whose dtype is a str"),
    (array((1,), dtype("i8"), [1]), "whose data is a list, not bytes"),
    (Reduce(Global("numpy._core.numeric", "_frombuffer"), (b"\0" * 8, dtype("i8"), (1,), "K")), "order 'K'"),
    (Reduce(Global("numpy._core.multiarray", "scalar"), (dtype("O", "|"), [1])), "dtype 'O'"),
    (Reduce(Global("numpy", "ndarray"), ((2**40,),)), r"TypeError: PickledArray.__init__\(\) takes 1"),
    (Reduce(Global("builtins", "set"), ([(1,)],)), "a dict key or set member that is a tuple"),
    ({2**100: 1}, "that is a int; only strings, bytes and numbers of at most 64 bits"),
    (Raw(b"]J\0\0\0\0b"), "it sets the state of a list; only arrays and dtypes have one"),
    (Reduce(Global("os", "system"), ("true",)), "it names os.system, which is not plain data; refused"),
    (Raw(b"0"), "IndexError: pop from empty list"),
    (Raw(b"\x96" + struct.pack("<Q", 2**40)), "it claims a bytearray of 1099511627776 bytes, more than it holds"),
    (Reduce(Global("builtins", "bytes"), (2**40,)), r"it calls bytes with arguments; only bytes\(\) is read"),
])
def test_forged_pickles_are_refused_with_the_reason(crafted, reason):
    with pytest.raises(ValueError, match=reason):
        load_plain(assemble(crafted))


def test_a_pickle_cut_short_says_so():
    whole = assemble([1, 2])
    with pytest.raises(ValueError, match="it ends before its STOP opcode"):
        load_plain(whole[:-1])
    with pytest.raises(ValueError, match="struct.error: unpack requires a buffer of 4 bytes"):
        load_plain(whole[:-4])
