"""Piano rolls: the pickle layout, round trips, padded batches, and clear errors for malformed data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows.data.piano import N_KEYS, load_piano, notes_to_roll, roll_to_notes, rolls_from_dict

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
