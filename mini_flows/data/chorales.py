"""The Bach chorales as piano rolls, built from music21's bundled corpus without a download: a
stand-in for JSB Chorales (Boulanger-Lewandowski et al., 2012; Ziegler and Rush 2019, Table 3),
cached in the pickle layout of ``piano`` so that ``load_piano`` reads it.

Needs music21 (``pip install 'mini-flows[music]'``), imported only when a chorale is built or
named, so importing ``mini_flows.data`` never needs it.

Pieces: ``music21.corpus.chorales.Iterator`` lists 371 chorales by Riemenschneider number, some
of them the same file; each file is taken once, in the iterator's order. A piece is kept when it
parses, its score has exactly four parts (soprano, alto, tenor, bass) and its steps (below) are
not those of a piece kept before it (two pairs of files in the corpus hold the same music); the
others (chorales with instrumental parts, files music21 cannot read, duplicates) are skipped, and
named when ``verbose``. In music21 10.5.1, 331 of the 350 files have four parts and 329 of those
are distinct.

Quantisation, as JSB samples its MIDI files every quarter note: step k of a piece is the set of
MIDI numbers sounding at ``first + k`` quarter notes, ``first`` being the onset of the piece's
first note, where a note from offset s to offset e sounds at the times t with s <= t < e. So
- a held or tied note sounds at every beat it spans (no onsets are marked, as in JSB);
- a note that starts between beats (a passing eighth) sounds only at the beats it spans, if any,
  and a grace note (no duration) never sounds;
- a step where every voice rests is empty (silence); rests before the first note are dropped, so
  a pickup is step 0, and the piece ends with its last note;
- two voices on one pitch give one note;
- notes outside 21..108 are dropped (none occur: the kept chorales span MIDI 36..81);
- repeats are not expanded (the score as written, first and second endings in reading order),
  and fermatas do not lengthen a note.

Split: the kept pieces in the order ``numpy.random.default_rng(seed).permutation`` gives (seed
``SEED`` = 0 unless told), then round(20%) of them for 'valid' and round(20%) for 'test' (at least
one each), the rest (60%) 'train'.

Cache: ``load_chorales()`` reads ``$XDG_CACHE_HOME/mini_flows/bach-chorales-v1-seed0.pickle``
(default ``~/.cache/mini_flows/``; or a path it is given) when it exists, and otherwise builds it
(about a minute) and writes it there.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np

from mini_flows.data.piano import HIGHEST_NOTE, LOWEST_NOTE, PianoRolls, load_piano, rolls_from_dict
from mini_flows.files import write_atomically
from mini_flows.train import Progress

SEED = 0
VALID, TEST = 0.2, 0.2
VERSION = 1
"""In the cache's file name: a change to the pieces or their steps bumps it, so no stale cache is read."""
VOICES = 4

Steps = list[tuple[int, ...]]
"""A piece: T time steps, each the sorted MIDI numbers sounding then."""
Item = TypeVar("Item")


def _corpus() -> Any:
    """music21's corpus module, or ModuleNotFoundError naming the extra that installs it."""
    try:
        from music21 import corpus
    except ImportError as err:
        raise ModuleNotFoundError("the Bach chorales are built with music21, which is not installed: "
                                  "pip install 'mini-flows[music]'", name="music21") from err
    return corpus


def chorale_names() -> list[str]:
    """The corpus's chorales ('bach/bwv269', ...), each file once, in the iterator's order."""
    return list(dict.fromkeys(_corpus().chorales.Iterator(returnType="filename")))


def score_steps(score: Any) -> Steps:
    """A parsed music21 score -> its quarter-note steps (see the module docstring)."""
    notes = list(score.flatten().notes)
    first = min(n.offset for n in notes)
    steps: list[set[int]] = [set() for _ in range(math.ceil(max(n.offset + n.quarterLength for n in notes) - first))]
    for n in notes:
        pitches = [p.midi for p in n.pitches if LOWEST_NOTE <= p.midi <= HIGHEST_NOTE]
        for k in range(math.ceil(n.offset - first), math.ceil(n.offset + n.quarterLength - first)):
            steps[k].update(pitches)
    return [tuple(sorted(step)) for step in steps]


def split_pieces(pieces: Sequence[Item], seed: int = SEED) -> dict[str, list[Item]]:
    """{'train', 'valid', 'test'} -> disjoint lists of ``pieces`` that together hold each once: a
    permutation by ``seed``, its first round(VALID * N) for 'valid', the next round(TEST * N) for
    'test' (at least one each), the rest for 'train'. ValueError for fewer than 3 pieces."""
    if len(pieces) < 3:
        raise ValueError(f"a split needs at least 3 pieces, one for each of train, valid and test; got {len(pieces)}")
    order = np.random.default_rng(seed).permutation(len(pieces))
    n_valid, n_test = (max(1, round(fraction * len(pieces))) for fraction in (VALID, TEST))
    parts = {"train": order[n_valid + n_test:], "valid": order[:n_valid], "test": order[n_valid:n_valid + n_test]}
    return {name: [pieces[i] for i in sorted(indices)] for name, indices in parts.items()}


def _read(corpus: Any, name: str) -> tuple[tuple[int, ...], ...] | str:
    """The steps of the four-part piece ``name``, or why it is skipped."""
    try:
        score = corpus.parse(name)
    except Exception as err:  # music21 raises many kinds for a file it cannot read: skip the piece, say why
        return f"does not parse: {type(err).__name__}: {err}"
    return tuple(score_steps(score)) if len(score.parts) == VOICES else f"{len(score.parts)} parts"


def build_chorales(names: Sequence[str] | None = None, seed: int = SEED,
                   verbose: bool = False) -> dict[str, list[Steps]]:
    """Parse ``names`` (corpus names; default ``chorale_names()``), keep the distinct four-part
    pieces and split them by ``seed``: the pickle layout of ``piano``, {'train', 'valid', 'test'}
    -> lists of pieces (``Steps``), each split in corpus order. When ``verbose``, prints progress
    with the time left and the pieces skipped. ValueError where fewer than 3 pieces are kept."""
    corpus = _corpus()
    names = chorale_names() if names is None else list(names)
    if not names:
        raise ValueError("no chorale names given")
    progress = Progress("parsing chorales", len(names), verbose, reports=10)
    pieces: dict[tuple, str] = {}  # steps -> the name of the first piece with them
    skipped = []
    for done, name in enumerate(names, 1):
        steps = _read(corpus, name)
        if isinstance(steps, str):
            skipped.append(f"{name} ({steps})")
        elif steps in pieces:
            skipped.append(f"{name} (the same steps as {pieces[steps]})")
        else:
            pieces[steps] = name
        progress.update(done)
    if verbose and skipped:
        print(f"  kept {len(pieces)} of {len(names)} pieces; skipped {len(skipped)}: {', '.join(skipped)}", flush=True)
    return split_pieces([list(steps) for steps in pieces], seed)


def cache_path(seed: int = SEED) -> Path:
    """Where ``load_chorales`` caches the whole corpus split by ``seed``: under $XDG_CACHE_HOME, or
    ~/.cache where that is unset or not an absolute path (as the XDG specification says)."""
    root = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(root) if os.path.isabs(root) else Path.home() / ".cache") / "mini_flows" / \
        f"bach-chorales-v{VERSION}-seed{seed}.pickle"


def load_chorales(path: str | os.PathLike | None = None, *, names: Sequence[str] | None = None, seed: int = SEED,
                  verbose: bool = True) -> PianoRolls:
    """The chorales' piano rolls (lists of arrays (T, 88) of 0.0 and 1.0), read from the pickle at
    ``path`` (default ``cache_path(seed)``) when it exists, else built by ``build_chorales(names,
    seed, verbose)`` and written there (folders created; all or nothing, so an interrupted build
    leaves no cache). An existing file is read as it is, whatever made it: delete it to rebuild.
    ``names`` (a few pieces, for tests and quick looks) needs an explicit ``path``, so that a
    part of the corpus is never cached where the whole is looked for."""
    if names is not None and path is None:
        raise ValueError("load_chorales(names=...) needs an explicit path: the default cache holds the whole corpus")
    path = cache_path(seed) if path is None else Path(path)
    if path.exists():
        return load_piano(path)
    data = build_chorales(names, seed, verbose)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: pickle.dump(data, file))
    return rolls_from_dict(data)
