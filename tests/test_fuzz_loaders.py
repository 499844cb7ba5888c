"""Fuzzing the loaders of files from elsewhere: whatever bytes ``load_piano`` and
``load_checkpoint`` are given, they return or raise one ValueError naming the file; nothing else
escapes, nothing crashes the process (a crash kills this test run: run a long fuzz in a
subprocess, e.g. ``HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_fuzz_loaders.py``).

Pickles: random opcode streams (with the names the unpickler allows and some it refuses, and
length fields that claim gigabytes), and structured pickles built from random NumPy dtypes
(object, fields, sub-arrays, strings, forged states), shapes (huge ones too), keys, codecs and
containers. Files ``.npz``: random keys (``params/`` names that clash, ``adam/`` entries, junk),
random dtypes (object and structured among them) with random bytes (NaN, infinities), the
configuration as random JSON or random bytes, then cut short, overwritten in places or left whole.
"""

from __future__ import annotations

import io
import json
import math
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import given, note, strategies as st

from mini_flows.checkpoint import checkpoint_config, load_checkpoint
from mini_flows.data.piano import load_piano
from mini_flows.optim import Adam
from tests import crafted_pickles as cp
from tests.crafted_pickles import DictOf, Global, Reduce, SetOf

# -- pickles ---------------------------------------------------------------------------------------

NAMES = [("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.multiarray", "_reconstruct"),
         ("numpy.core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
         ("builtins", "set"), ("__builtin__", "frozenset"), ("builtins", "bytes"),
         ("os", "system"), ("builtins", "eval"), ("numpy", "frombuffer"), ("builtins", "bytearray"),
         ("numpy", "zeros"), ("copyreg", "_reconstructor"), ("builtins", "getattr")]
NO_ARGUMENT_OPCODES = list(b"()]}N\x88\x89t\x85\x86\x87ldeasuRb\x81\x92012\x8f\x90\x91\x94.\x93\x97\x98o")
opcodes = st.one_of(
    st.sampled_from(NO_ARGUMENT_OPCODES).map(lambda code: bytes([code])),
    st.tuples(st.sampled_from(b"KqhCU"), st.integers(0, 255)).map(bytes),  # BININT1, BINPUT, BINGET, short lengths
    st.integers(-2**31, 2**31 - 1).map(lambda n: b"J" + struct.pack("<i", n)),
    st.tuples(st.sampled_from([b"X", b"B", b"\x8b", b"r", b"j"]), st.integers(0, 2**32 - 1))
      .map(lambda op: op[0] + struct.pack("<I", op[1])),  # 4-byte lengths and memo indices, however large
    st.tuples(st.sampled_from([b"\x8d", b"\x8e", b"\x96", b"\x95"]), st.integers(0, 2**64 - 1))
      .map(lambda op: op[0] + struct.pack("<Q", op[1])),  # 8-byte lengths, frames
    st.sampled_from(NAMES).map(lambda name: cp.emit(Global(*name))),
    st.text(max_size=6).map(cp.emit),
    st.binary(max_size=12).map(cp.emit),
    st.binary(min_size=1, max_size=4),  # any bytes at all
)
opcode_streams = st.tuples(st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]),
                           st.lists(opcodes, max_size=40)).map(lambda parts: parts[0] + b"".join(parts[1]) + b".")

leaves = st.one_of(st.none(), st.booleans(), st.integers(21, 108), st.integers(-2**70, 2**70), st.floats(),
                   st.text(max_size=4), st.binary(max_size=8))
shapes = st.lists(st.one_of(st.integers(0, 4), st.integers(-1, 2**40)), max_size=3).map(tuple)
dtype_names = st.one_of(st.sampled_from(["i8", "f8", "b1", "u1", "f2", "f16", "i2", "O", "V8", "U3", "S2", "M8",
                                         "c16", "i3", "x", "?", "(2,)i4", "i4,f8"]), st.text(max_size=4))


def dtypes(inner: st.SearchStrategy) -> st.SearchStrategy:
    """Pickled numpy.dtype calls, their states forged: byte orders, sub-arrays, fields, sizes, flags."""
    return st.builds(cp.dtype, dtype_names, st.sampled_from(["<", ">", "|", "=", "?"]),
                     st.none() | st.tuples(inner, shapes), st.none() | st.tuples(st.text(max_size=2)),
                     st.none() | st.dictionaries(st.text(max_size=2), st.tuples(inner, st.integers(-8, 16)),
                                                 max_size=2),
                     st.integers(-1, 2**40), st.integers(-1, 16), st.sampled_from([0, 1, 63, 255]))


plain_dtypes = dtypes(st.just(None))
any_dtypes = st.recursive(plain_dtypes, dtypes, max_leaves=3)
array_data = st.one_of(st.binary(max_size=64), st.text(max_size=8), st.lists(leaves, max_size=3))
numpy_values = st.one_of(
    st.builds(cp.array, shapes, any_dtypes, array_data, st.booleans(),
              st.sampled_from(["numpy._core.multiarray", "numpy.core.multiarray"])),
    st.builds(lambda d, data: Reduce(Global("numpy._core.multiarray", "scalar"), (d, data)), any_dtypes, array_data),
    st.builds(lambda *args: Reduce(Global("numpy._core.numeric", "_frombuffer"), args),
              st.binary(max_size=32) | st.binary(max_size=32).map(bytearray), any_dtypes, shapes,
              st.sampled_from(["C", "F", "K", 0])),
    st.builds(lambda text, codec: Reduce(Global("_codecs", "encode"), (text, codec)), st.text(max_size=6),
              st.sampled_from(["latin1", "rot13", "utf-16", "no-such-codec", "zlib_codec", "hex", "base64"])),
    st.builds(lambda name, args: Reduce(Global(*name), args), st.sampled_from(NAMES),
              st.lists(leaves | shapes, max_size=3).map(tuple)),
)
structures = st.recursive(
    leaves | numpy_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3).map(lambda items: SetOf(tuple(items))),
        st.lists(st.tuples(children, children), max_size=3).map(lambda pairs: DictOf(tuple(pairs))),
        st.dictionaries(st.sampled_from(["train", "valid", "test"]), children, max_size=3),
    ),
    max_leaves=16,
)
layouts = st.fixed_dictionaries({split: st.lists(st.lists(structures, max_size=3), max_size=2)
                                 for split in ("train", "valid", "test")})
structured_pickles = st.builds(cp.assemble, layouts | structures, st.sampled_from([2, 4, 5]))
pickles = st.one_of(opcode_streams, structured_pickles)


def returns_or_raises_value_error(path: Path, load: Callable[[], Any]) -> Any:
    """``load()``'s result, or None where it raised ValueError, whose message must name ``path``
    in one line; any other exception fails the test."""
    try:
        return load()
    except ValueError as err:
        assert str(path) in str(err) and "\n" not in str(err), str(err)
        return None


@given(pickles)
def test_load_piano_returns_or_raises_value_error_on_any_pickle(content):
    note(repr(content))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.pickle"
        path.write_bytes(content)
        returns_or_raises_value_error(path, lambda: load_piano(path))


# -- checkpoints -----------------------------------------------------------------------------------

KEYS = ["params/a", "params/a/b", "params/a/b/c", "params/", "params//x", "params/b", "config", "adam/lr",
        "adam/eps", "adam/betas", "adam/clip_norm", "adam/m/a", "adam/v/a", "adam/t/a", "adam/m/b", "adam/v/b",
        "adam/t/b", "adam/v/a/b", "adam/x", "adam/m"]
NPZ_DTYPES = ["f8", "f4", "f2", ">f8", "i8", "i4", "u1", "b1", "c16", "U3", "S2", "M8[s]", "V4", "(2,)i4",
              [("a", "i4"), ("b", "f8")]]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=4), children, max_size=3), max_leaves=8)
configs = st.one_of(json_values.map(lambda value: json.dumps(value).encode()), st.binary(max_size=16),
                    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth))


@st.composite
def npz_arrays(draw: st.DrawFn) -> np.ndarray:
    """An array of a random dtype filled with random bytes (NaN and infinity included), or of objects."""
    shape = draw(st.lists(st.integers(0, 3), max_size=2).map(tuple))
    if draw(st.integers(0, 9)) == 0:
        return np.array([draw(leaves) for _ in range(math.prod(shape))], dtype=object).reshape(shape)
    dtype = np.dtype(draw(st.sampled_from(NPZ_DTYPES)))
    size = math.prod(shape) * dtype.itemsize
    return np.ndarray(shape, dtype, buffer=draw(st.binary(min_size=size, max_size=size)))


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    """An .npz of random entries, then perhaps cut short or overwritten in places."""
    entries = draw(st.dictionaries(st.sampled_from(KEYS) | st.text(min_size=1, max_size=8), npz_arrays(), max_size=8))
    if draw(st.booleans()):
        entries["config"] = np.frombuffer(draw(configs), dtype=np.uint8)
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **entries)
    content = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "cut", "overwrite", "junk"]))
    if damage == "cut":
        content = content[:draw(st.integers(0, len(content)))]
    elif damage == "overwrite":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(content) - 1))
            content = content[:at] + draw(st.binary(min_size=1, max_size=4)) + content[at + 1:]
    elif damage == "junk":
        content = draw(st.binary(max_size=64))
    return content


@given(npz_files())
def test_load_checkpoint_returns_or_raises_value_error_on_any_npz(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.npz"
        path.write_bytes(content)
        returns_or_raises_value_error(path, lambda: checkpoint_config(path))
        returns_or_raises_value_error(path, lambda: load_checkpoint(path))
        returns_or_raises_value_error(path, lambda: load_checkpoint(path, config={"kind": "bipartite"}))
        returns_or_raises_value_error(path, lambda: load_checkpoint(path, like={"a": np.zeros(2)}))
        adam = Adam()
        if returns_or_raises_value_error(path, lambda: load_checkpoint(path, adam)) is not None:
            Adam(adam.lr, adam.betas, adam.eps, adam.clip_norm)  # what loaded, Adam's constructor accepts
            assert all(np.isfinite(s[moment]).all() for s in adam.state.values() for moment in ("m", "v"))
