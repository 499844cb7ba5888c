"""Piano rolls: the pickle layout, round trips, padded batches, and clear errors for malformed data."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows.data.piano import N_KEYS, load_piano, notes_to_roll, roll_to_notes, rolls_from_dict
from tests import crafted_pickles
from tests.crafted_pickles import Global, Reduce

ROOT = Path(__file__).resolve().parents[2]

notes = st.integers(21, 108)
steps = st.frozensets(notes, max_size=6)
sequences = st.lists(steps, min_size=1, max_size=12)
VALID = {"train": [[(60, 64, 67), (), [62.0]]], "valid": [[{21, 108}]], "test": [[(60,)], [(61,), (62,)]], "extra": 1}


def test_notes_become_ones_at_note_minus_21():
    roll = notes_to_roll([(21, 60), (), {108}])
    assert roll.shape == (3, N_KEYS) and roll.dtype == np.float64
    assert np.flatnonzero(roll[0]).tolist() == [0, 39] and roll[1].sum() == 0 and np.flatnonzero(roll[2]).tolist() == [87]


@given(sequences)
def test_roll_round_trip(sequence):
    roll = notes_to_roll([tuple(s) for s in sequence], dtype=np.float32)
    assert roll.dtype == np.float32 and set(np.unique(roll)) <= {0.0, 1.0}
    assert roll_to_notes(roll) == [tuple(sorted(s)) for s in sequence]


def test_load_piano_reads_the_common_layout_and_ignores_other_keys(tmp_path):
    path = tmp_path / "music.pickle"
    path.write_bytes(pickle.dumps(VALID))
    rolls = load_piano(path)
    assert [r.shape for r in rolls.train] == [(3, N_KEYS)] and len(rolls.test) == 2
    assert roll_to_notes(rolls.train[0]) == [(60, 64, 67), (), (62,)]
    assert roll_to_notes(rolls.valid[0]) == [(21, 108)]


def test_batches_pad_with_silence():
    rolls = rolls_from_dict(VALID)
    (batch, lengths), = list(rolls.batches("test", 2, None))
    assert batch.shape == (2, 2, N_KEYS) and lengths.tolist() == [1, 2]
    assert batch[0, 1].sum() == 0 and batch[1, 1, 62 - 21] == 1
    padded, lengths = rolls.padded("test")
    assert padded.shape == (2, 2, N_KEYS) and lengths.tolist() == [1, 2]
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        rolls.split("dev")


def replace(split, value):
    data = dict(VALID)
    data[split] = value
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2], r"expected a dict with keys \['train', 'valid', 'test'\], got list"),
        ({"train": [], "valid": []}, r"lacks the key\(s\) \['test'\]"),
        (replace("train", []), r"split 'train' must be a non-empty list of sequences, got an empty list"),
        (replace("valid", {"a": 1}), r"split 'valid' must be a non-empty list of sequences, got dict"),
        (replace("test", [[(60,)], "abc"]), r"split 'test', sequence 1 must be a list of time steps, got str"),
        (replace("train", [[]]), r"split 'train', sequence 0 is empty"),
        (replace("train", [[(60,), 61]]), r"split 'train', sequence 0, step 1: a time step must be a set, tuple or list"),
        (replace("train", [[(60, 109)]]), r"step 0: note 109 is outside the piano range 21..108"),
        (replace("train", [[(20,)]]), r"note 20 is outside the piano range"),
        (replace("train", [[(60.5,)]]), r"notes must be integers, got 60.5"),
        (replace("train", [[("60",)]]), r"notes must be integers, got str '60'"),
        (replace("train", [[(True,)]]), r"notes must be integers, got bool"),
        (replace("train", [[(10**400,)]]), r"note <a 1329-bit integer> is outside the piano range"),
        (replace("train", [[(60,) * 89]]), r"step 0: a time step lists at most 88 notes, one per key, got 89"),
    ],
)
def test_malformed_data_raises_a_clear_value_error(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        rolls_from_dict(data)
    path = tmp_path / "bad.pickle"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match=r"bad\.pickle: .*" + message):
        load_piano(path)


@pytest.mark.parametrize("content", [b"", b"not a pickle at all"])
def test_a_file_that_does_not_unpickle_raises_value_error(tmp_path, content):
    path = tmp_path / "junk.pickle"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"junk\.pickle is not a readable pickle"):
        load_piano(path)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_piano(tmp_path / "absent.pickle")


def test_roll_to_notes_checks_the_shape():
    with pytest.raises(ValueError, match=r"roll must have shape \(T, 88\), got \(3, 87\)"):
        roll_to_notes(np.zeros((3, 87)))


class _Payload:
    """A pickle that, loaded with plain pickle.load, writes a marker file (the classic exploit)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"train": [_Payload(marker)], "valid": [], "test": []}))
    with pytest.raises(ValueError, match=r"evil\.pickle is not a readable pickle of plain data: it names \w+\.open"):
        load_piano(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_plain_data_loads_under_every_protocol_with_sets_and_numpy_arrays(tmp_path, protocol):
    data = {"train": [[{60, 64}, (62,), [], np.array([65, 69])]], "valid": [[frozenset({60})]], "test": [[[72.0]]]}
    path = tmp_path / "music.pickle"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    rolls = load_piano(path)
    assert [np.flatnonzero(step).tolist() for step in rolls.train[0]] == [[39, 43], [41], [], [44, 48]]


def run_load_piano(path) -> subprocess.CompletedProcess:
    """``load_piano(path)`` in a fresh Python, so that a crash shows as an exit status, not a dead test run."""
    return subprocess.run([sys.executable, "-c", "import sys; from mini_flows.data.piano import load_piano; "
                           "load_piano(sys.argv[1])", str(path)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def music(step) -> dict:
    """The layout with ``step`` as the first training step."""
    return {"train": [[step]], "valid": [[(60,)]], "test": [[(60,)]]}


@pytest.mark.parametrize("crafted, reason", [
    # issue 24's recipe: a dtype whose object field its flags deny; NumPy read the bytes as pointers
    (music(crafted_pickles.array((1,), crafted_pickles.OBJECT_FIELD_DTYPE, b"A" * 8)), "it holds a dtype with fields"),
    # a dict key nested a million tuples deep: hashing it overflowed CPython's C stack
    ({**music((60,)), crafted_pickles.Raw(b")" + b"\x85" * 10**6): 0},
     "it holds a dict key or set member that is a tuple"),
])
def test_a_pickle_that_crashed_python_is_refused_in_one_line(tmp_path, crafted, reason):
    path = tmp_path / "crafted.pickle"
    path.write_bytes(crafted_pickles.assemble(crafted))
    done = run_load_piano(path)
    assert done.returncode == 1, f"exit status {done.returncode}: {done.stderr[-500:]}"
    last_line = done.stderr.splitlines()[-1]
    assert last_line.startswith(f"ValueError: {path} is not a readable pickle of plain data: {reason}")


@pytest.mark.parametrize("crafted, reason", [
    (Reduce(Global("numpy._core.multiarray", "_reconstruct"), ()), r"TypeError: _reconstruct\(\) missing"),
    (Reduce(Global("_codecs", "encode"), ("abc", "no-such-codec")), "the codec 'no-such-codec'; only text to latin1"),
    (Reduce(Global("numpy.core.multiarray", "_reconstruct"), (Global("numpy", "ndarray"), (2**40,), b"b")),
     r"an array of shape \(1099511627776,\) before setting its state"),
])
def test_a_pickle_that_raised_type_lookup_or_memory_errors_raises_value_error(tmp_path, crafted, reason):
    """Issue 24: ``_reconstruct`` without arguments raised TypeError, an unknown codec LookupError,
    and 40 bytes asking for a 1 TiB array MemoryError."""
    path = tmp_path / "crafted.pickle"
    path.write_bytes(crafted_pickles.assemble(music(crafted)))
    with pytest.raises(ValueError, match=rf"crafted\.pickle is not a readable pickle of plain data: .*{reason}"):
        load_piano(path)


def test_repeated_references_cannot_make_a_small_file_demand_huge_rolls(tmp_path):
    """300 references to one sequence of 300 references to one step: 90,000 time steps from about
    700 bytes, where a kilobyte more could ask for terabytes. A few repeats still load."""
    sequence = [(60, 64)] * 300
    path = tmp_path / "repeats.pickle"
    path.write_bytes(pickle.dumps({"train": [sequence] * 300, "valid": [[(60,)]], "test": [[(60,)]]}))
    with pytest.raises(ValueError, match=rf"repeats\.pickle: it describes 90002 time steps in {path.stat().st_size} "
                                         r"bytes, more than it could store without repeating references"):
        load_piano(path)
    path.write_bytes(pickle.dumps({"train": [sequence[:5]] * 6, "valid": [[(60,)]], "test": [[(60,)]]}))
    assert len(load_piano(path).train) == 6
