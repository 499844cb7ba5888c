"""Piano rolls from the common polyphonic-music pickle layout (Boulanger-Lewandowski et al., 2012),
as used for Table 3 of Ziegler and Rush (2019): Nottingham, Piano-midi.de, MuseData, JSB Chorales.

The pickle holds a dict with keys 'train', 'valid' and 'test' (other keys are ignored); each is a
list of sequences, each sequence a list of time steps, each time step a set, tuple or list of the
MIDI note numbers sounding then (21 = A0 to 108 = C8; an empty step is silence). Note numbers may be
ints or integral floats (60.0), as some copies store them. A sequence of T steps becomes a piano
roll of shape (T, 88) with ``roll[t, note - 21] = 1`` for each sounding note, 0 elsewhere.

Security: an ordinary ``pickle.load`` runs whatever code a pickle names. ``load_piano`` unpickles
with ``plain_pickle.load_plain`` instead, which builds only plain data (dicts, lists, tuples,
sets, numbers, strings, and NumPy arrays of numbers as lists) and turns anything else, and any
damage, into a ValueError naming the file. A pickle may not describe more time steps than it has
bytes (which only repeated references to one sequence could do), so a small file cannot demand
enormous rolls. ``rolls_from_dict`` validates an already loaded dict without
unpickling anything.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from mini_flows.data.plain_pickle import load_plain, short_repr
from mini_flows.data.text import SPLITS, batches, pad_sequences

LOWEST_NOTE = 21
HIGHEST_NOTE = 108
N_KEYS = HIGHEST_NOTE - LOWEST_NOTE + 1


def _note(value: Any, where: str) -> int:
    """``value`` as a MIDI note number in [21, 108], or ValueError naming ``where``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: notes must be integers, got {type(value).__name__} {short_repr(value)}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"{where}: notes must be integers, got {value!r}")
    if not LOWEST_NOTE <= value <= HIGHEST_NOTE:
        raise ValueError(f"{where}: note {short_repr(value)} is outside the piano range {LOWEST_NOTE}..{HIGHEST_NOTE}")
    return int(value)


def notes_to_roll(sequence: Sequence[Any], dtype: Any = np.float64, *, where: str = "sequence") -> np.ndarray:
    """A piano roll (T, 88) of 0/1 from T time steps of MIDI note numbers.

    Raises ValueError (prefixed by ``where``) for an empty sequence, a step that is not a set,
    frozenset, tuple, list or 1-D array or lists more than 88 notes, or a note that is not an
    integer in [21, 108].
    """
    if not isinstance(sequence, (list, tuple)):
        raise ValueError(f"{where} must be a list of time steps, got {type(sequence).__name__}")
    if len(sequence) == 0:
        raise ValueError(f"{where} is empty; every sequence needs at least one time step")
    roll = np.zeros((len(sequence), N_KEYS), dtype=dtype)
    for t, step in enumerate(sequence):
        if isinstance(step, np.ndarray) and step.ndim == 1:
            step = step.tolist()
        if not isinstance(step, (set, frozenset, tuple, list)):
            kind = type(step).__name__
            raise ValueError(f"{where}, step {t}: a time step must be a set, tuple or list of notes, got {kind}")
        if len(step) > N_KEYS:
            raise ValueError(f"{where}, step {t}: a time step lists at most {N_KEYS} notes, one per key, "
                             f"got {len(step)}")
        for value in step:
            roll[t, _note(value, f"{where}, step {t}") - LOWEST_NOTE] = 1
    return roll


def roll_to_notes(roll: np.ndarray) -> list[tuple[int, ...]]:
    """The inverse of ``notes_to_roll``: roll (T, 88) of 0/1 -> T tuples of sorted MIDI note numbers."""
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != N_KEYS:
        raise ValueError(f"roll must have shape (T, {N_KEYS}), got {roll.shape}")
    return [tuple(int(k) + LOWEST_NOTE for k in np.flatnonzero(step)) for step in roll]


@dataclasses.dataclass(frozen=True)
class PianoRolls:
    """Piano-roll splits: each a list of arrays of shapes (T_n, 88) holding 0.0 and 1.0."""

    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]

    def split(self, name: str) -> list[np.ndarray]:
        """The rolls of split ``name`` ('train', 'valid' or 'test')."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; the splits are {', '.join(map(repr, SPLITS))}")
        return getattr(self, name)

    def padded(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as rolls (N, T_max, 88) padded with zeros (silence), and lengths (N,)."""
        return pad_sequences(self.split(name), 0)

    def batches(
        self, split: str, batch_size: int, seed: int | None, *, drop_last: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches of ``split``: rolls (B, T, 88) right-padded with zeros and lengths (B,); shuffled
        by ``seed`` (``None`` keeps the stored order)."""
        return batches(self.split(split), batch_size, seed, drop_last=drop_last, pad_value=0)


def rolls_from_dict(data: Mapping[str, Any], dtype: Any = np.float64) -> PianoRolls:
    """Validate a loaded polyphonic-music dict and convert every sequence with ``notes_to_roll``.

    Raises ValueError for a non-dict, a missing key, a split that is not a non-empty list, or a
    malformed sequence (the message names the split, sequence and step).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a dict with keys {list(SPLITS)}, got {type(data).__name__}")
    missing = [name for name in SPLITS if name not in data]
    if missing:
        raise ValueError(f"the dict lacks the key(s) {missing}; it needs {list(SPLITS)} (has "
                         f"{short_repr(sorted(map(str, data)))})")
    splits = {}
    for name in SPLITS:
        sequences = data[name]
        if not isinstance(sequences, (list, tuple)) or len(sequences) == 0:
            kind = "an empty list" if isinstance(sequences, (list, tuple)) else type(sequences).__name__
            raise ValueError(f"split {name!r} must be a non-empty list of sequences, got {kind}")
        splits[name] = [notes_to_roll(s, dtype, where=f"split {name!r}, sequence {i}") for i, s in enumerate(sequences)]
    return PianoRolls(**splits)


def load_piano(path: str | os.PathLike, dtype: Any = np.float64) -> PianoRolls:
    """Load a polyphonic-music pickle (see the module docstring) into piano rolls.

    Unpickles with ``load_plain`` (plain data only, nothing a pickle names is run; Python 2
    pickles load too). Raises ValueError naming the file for one that does not unpickle, names
    anything but plain data, describes more time steps than it has bytes, or does not
    have the expected layout; FileNotFoundError where ``path`` does not exist.
    """
    with open(path, "rb") as file:
        content = file.read()
    try:
        data = load_plain(content)
    except ValueError as err:
        raise ValueError(f"{os.fspath(path)} is not a readable pickle of plain data: {err}") from err
    try:
        _check_size(data, len(content))
        return rolls_from_dict(data, dtype)
    except ValueError as err:
        raise ValueError(f"{os.fspath(path)}: {err}") from None


def _check_size(data: Any, size: int) -> None:
    """ValueError unless the time steps in ``data``'s splits are at most ``size``, the file's
    bytes: a pickle stores each step in at least one byte, unless it refers to one sequence again
    and again (``[piece] * 6`` is still well within), which could make a kilobyte demand terabytes
    of rolls. With at most 88 notes a step (``notes_to_roll``), this bounds the rolls' memory and
    the time to build them by the file's size. Parts that are not lists are left to
    ``rolls_from_dict`` to name."""
    if not isinstance(data, Mapping):
        return
    splits = [data.get(name) for name in SPLITS]
    sequences = [s for split in splits if isinstance(split, (list, tuple)) for s in split]
    steps = sum(len(s) for s in sequences if isinstance(s, (list, tuple)))
    if steps > size:
        raise ValueError(f"it describes {steps} time steps in {size} bytes, more than it could store without "
                         "repeating references to the same sequences; refused")
