"""The Bach chorales from music21's corpus: steps checked by hand against two scores, the pieces
kept and skipped, the seeded split, the cache read back by ``load_piano``, and the errors."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows.data import chorales as module
from mini_flows.data.chorales import cache_path, load_chorales, split_pieces
from mini_flows.data.piano import N_KEYS, load_piano, roll_to_notes

NAMES = ["bach/bwv269", "bach/bwv286", "bach/bwv424",  # four parts, 63, 24 and 37 steps
         "bach/bwv269", "bach/bwv248.59-6", "bach/no-such-chorale"]  # skipped: a repeat, 5 parts, no such file
BWV269 = [  # the first seven quarter notes of BWV 269 (3/4, G major), read off the score: bass, tenor, alto, soprano
    (43, 59, 62, 67),  # the pickup: G2 B3 D4 G4
    (55, 59, 62, 67),  # G3 B3 D4 G4
    (52, 60, 64, 67),  # E3 C4 E4 and the soprano's G4 held from the last step (the tenor's B3 at 2.5 falls between)
    (54, 57, 62, 74),  # F#3 A3 D4 D5
    (55, 62, 71),  # tenor and bass both on G3: one note; D4 B4
    (50, 54, 62, 71),  # D3 F#3, the alto's D4 and soprano's B4 held (the soprano's A4 at 5.5 falls between)
    (52, 55, 59, 67),  # E3 G3 B3 G4
]
BWV424 = [(45, 60, 69, 76), (57, 64, 69, 72), (52, 64, 68, 72)]
"""BWV 424 opens with a quarter rest in every voice, dropped: A2 C4 A4 E5; A3 E4 A4 C5; E3 E4 G#4 and the held C5."""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, object, str]:
    """(the cache file, the rolls ``load_chorales`` returned, what it printed) for NAMES; the tests
    that read them are skipped, saying why, where music21 is not installed."""
    pytest.importorskip("music21", reason="the chorales are parsed from music21's corpus, which is not installed: "
                                          "pip install 'mini-flows[music]'")
    path = tmp_path_factory.mktemp("chorales") / "few.pickle"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rolls = load_chorales(path, names=NAMES)
    return path, rolls, printed.getvalue()


def every_roll(rolls) -> list[np.ndarray]:
    return rolls.train + rolls.valid + rolls.test


def test_each_step_holds_the_pitches_sounding_at_its_quarter_note(built):
    _, rolls, _ = built
    pieces = sorted((roll_to_notes(roll) for roll in every_roll(rolls)), key=len)
    assert [len(p) for p in pieces] == [24, 37, 63]  # from the first note to the end of the last
    assert pieces[1][:3] == BWV424 and pieces[2][:7] == BWV269
    for roll in every_roll(rolls):
        assert roll.shape[1] == N_KEYS and set(np.unique(roll)) <= {0.0, 1.0}
        assert roll.sum(1).max() <= 4 and np.flatnonzero(roll.sum(0)).min() >= 36 - 21  # four voices, none below C2


def test_the_build_reports_progress_and_names_each_skipped_piece(built):
    _, _, printed = built
    assert "parsing chorales" in printed and "6/6" in printed and "s left" in printed
    assert "kept 3 of 6 pieces; skipped 3: bach/bwv269 (the same steps as bach/bwv269), " \
           "bach/bwv248.59-6 (5 parts), bach/no-such-chorale (does not parse: " in printed


def test_the_cache_reads_back_through_load_piano_without_rebuilding(built, monkeypatch):
    path, rolls, _ = built

    def rebuilt(*args, **kwargs):
        raise AssertionError("the cache was not read")

    monkeypatch.setattr(module, "build_chorales", rebuilt)
    for again in (load_piano(path), load_chorales(path, names=NAMES, verbose=False)):
        for name in ("train", "valid", "test"):
            assert [r.tolist() for r in again.split(name)] == [r.tolist() for r in rolls.split(name)]


@given(st.integers(3, 400), st.integers(0, 2**32 - 1))
def test_the_split_is_a_seeded_partition_of_60_20_20(n, seed):
    pieces = [f"piece {i}" for i in range(n)]
    split = split_pieces(pieces, seed)
    assert split == split_pieces(pieces, seed) and list(split) == ["train", "valid", "test"]
    assert sorted(sum(split.values(), []), key=pieces.index) == pieces  # disjoint, and every piece once
    assert len(split["valid"]) == len(split["test"]) == max(1, round(0.2 * n)) and split["train"]
    assert all(part == sorted(part, key=pieces.index) for part in split.values())  # each in the given order


def test_the_split_depends_on_the_seed_and_needs_three_pieces():
    assert split_pieces(list(range(329)), 0) != split_pieces(list(range(329)), 1)
    with pytest.raises(ValueError, match="at least 3 pieces"):
        split_pieces([1, 2], 0)


def test_the_cache_lives_under_xdg_cache_home_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path() == tmp_path / "mini_flows" / "bach-chorales-v1-seed0.pickle"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ("", "relative/cache"):  # the XDG specification: use it only when absolute
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert cache_path(3) == tmp_path / "home" / ".cache" / "mini_flows" / "bach-chorales-v1-seed3.pickle"
    with pytest.raises(ValueError, match="needs an explicit path"):
        load_chorales(names=NAMES)


def test_without_music21_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "music21", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'mini-flows\[music\]'"):
        load_chorales(tmp_path / "chorales.pickle", names=NAMES, verbose=False)
    assert not (tmp_path / "chorales.pickle").exists()


def test_importing_the_data_package_does_not_import_music21():
    code = "import sys, mini_flows.data, mini_flows.experiments.music; assert 'music21' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_music21_the_tests_that_parse_chorales_skip_and_say_why():
    """Run this file's other tests in a process where music21 cannot be imported."""
    others = ["-q", "-rs", "-p", "no:cacheprovider", __file__, "-k", "not skip_and_say_why"]
    code = f"import sys; sys.modules['music21'] = None; import pytest; sys.exit(pytest.main({others!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent.parent.parent)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and re.fullmatch(r"\d+ passed, 3 skipped, 1 deselected in [\d.]+s", summary), \
        done.stdout
    assert done.stdout.count("SKIPPED") == 3 and "not installed: pip install 'mini-flows[music]'" in done.stdout
