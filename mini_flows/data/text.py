"""Plain-text corpora for character-level language modelling (Ziegler and Rush, 2019, section 6.1).

A corpus file holds one sentence per line. Each line is stripped of surrounding whitespace (unless
``strip=False``), blank lines are skipped, and every remaining character is one token. Sentences
longer than ``max_length`` (288, as in the paper's PTB setup) raise a ValueError that names the file
and line, or are dropped and counted when ``drop_long=True``.

Token ids:

- ``PAD_ID = 0`` pads batches on the right; it never occurs inside a sentence.
- ``UNK_ID = 1`` stands for a character that the training split does not contain. The vocabulary is
  built from the training split only, so the <unk> rule is: a character of the validation or test
  split that never occurs in the training split becomes ``UNK_ID`` (and is counted in
  ``Corpus.unknown``); with ``strict=True`` it raises a ValueError naming the file, line and
  character instead.
- ids 2, 3, ... are the training characters in sorted (code point) order.

The splits come either from three files, or from one file by a seeded shuffle of its sentences into
train/valid/test fractions. Batches are right-padded with ``PAD_ID`` to the longest sentence in the
batch and come with their lengths.

References: Ziegler and Rush, "Latent Normalizing Flows for Discrete Sequences", ICML 2019.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterator, Sequence

import numpy as np

from mini_flows.checks import check_positive_int

PAD_ID = 0
UNK_ID = 1
PAD = "<pad>"
UNK = "<unk>"
MAX_LENGTH = 288
SPLITS = ("train", "valid", "test")


def pad_sequences(sequences: Sequence[np.ndarray], pad_value: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length sequences into one right-padded array.

    Parameters
    ----------
    sequences : list of N arrays of shapes (T_n, *feature), all with the same feature shape
    pad_value : value written after each sequence's end

    Returns
    -------
    padded : (N, T_max, *feature) of the sequences' common dtype (``np.result_type``: an int and a
        float sequence give floats), ``padded[n, :T_n] = sequences[n]``, the rest ``pad_value``
    lengths : (N,) int64, the T_n
    """
    if len(sequences) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    arrays = [np.asarray(s) for s in sequences]
    feature, dtype = arrays[0].shape[1:], np.result_type(*{a.dtype for a in arrays})  # few dtypes, many arrays
    for n, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[1:] != feature:
            raise ValueError(f"sequence {n} has shape {a.shape}; every sequence must have shape (T, *{feature})")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    padded = np.full((len(arrays), int(lengths.max()), *feature), pad_value, dtype=dtype)
    for n, a in enumerate(arrays):
        padded[n, : len(a)] = a
    return padded, lengths


def batches(
    sequences: Sequence[np.ndarray],
    batch_size: int,
    seed: int | None,
    *,
    drop_last: bool = False,
    pad_value: float = 0,
    pool: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One pass over ``sequences`` in batches, each padded by ``pad_sequences``.

    ``seed`` (an int) shuffles the order with ``numpy.random.default_rng(seed)``; ``seed=None`` keeps
    the stored order (for evaluation). Each batch is padded to its own longest sequence.

    ``pool`` (with a seed): batches of similar lengths, so that less of each is padding. The
    shuffled order is cut into pools of ``pool`` batches, each pool is sorted by length (stably)
    and cut into batches, and the pass visits those batches in an order shuffled by the same
    generator. Every sequence still comes once per pass, and a new seed mixes new batches.

    Yields
    ------
    padded : (B, T_max, *feature) with B = batch_size except possibly for the last batch
    lengths : (B,) int64
    """
    check_positive_int("batch_size", batch_size)
    if pool is not None:
        check_positive_int("pool", pool)
        if seed is None:
            raise ValueError("pool needs a seed: it groups a shuffled order")
    rng = None if seed is None else np.random.default_rng(seed)
    order = np.arange(len(sequences)) if rng is None else rng.permutation(len(sequences))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    starts = range(0, stop, batch_size)
    if pool is not None:
        size = pool * batch_size
        lengths = np.array([len(s) for s in sequences])
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(size, len(order), size))])
        starts = [starts[i] for i in rng.permutation(len(starts))]
    for start in starts:
        yield pad_sequences([sequences[i] for i in order[start : start + batch_size]], pad_value)


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Character vocabulary: id 0 is <pad>, id 1 is <unk>, ids 2.. are ``chars`` in order.

    ``size = len(chars) + 2`` is the number of categories a model's softmax needs.
    """

    chars: tuple[str, ...]
    _index: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ValueError("Vocab.chars must be single characters")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("Vocab.chars must not repeat a character")
        object.__setattr__(self, "_index", {c: i + 2 for i, c in enumerate(self.chars)})

    @classmethod
    def build(cls, sentences: Sequence[str]) -> "Vocab":
        """The vocabulary of every character in ``sentences``, sorted by code point."""
        return cls(tuple(sorted(set().union(*map(set, sentences)))))

    @property
    def size(self) -> int:
        """Number of token ids, including <pad> and <unk>."""
        return len(self.chars) + 2

    def encode(self, sentence: str, *, strict: bool = False) -> np.ndarray:
        """Token ids (len(sentence),) int64; unknown characters become UNK_ID, or raise ValueError
        (naming the character) when ``strict``."""
        ids = [self._index.get(c, UNK_ID) for c in sentence]
        if strict and UNK_ID in ids:
            raise ValueError(f"unknown character {sentence[ids.index(UNK_ID)]!r} (not in the training vocabulary)")
        return np.array(ids, dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The string for token ids: <pad> decodes to nothing, <unk> to the text '<unk>'."""
        table = ("", UNK) + self.chars
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"token ids must lie in [0, {self.size}), got values in [{ids.min()}, {ids.max()}]")
        return "".join(table[int(i)] for i in ids.ravel())


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A tokenised corpus: each split is a list of int64 arrays of shapes (T_n,), 1 <= T_n <= max_length.

    ``dropped[split]`` counts sentences dropped for length (``drop_long=True``; for a corpus split
    from one file they are dropped before splitting and all counted under 'train');
    ``unknown[split]`` counts characters mapped to <unk> (always 0 for train).
    """

    vocab: Vocab
    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    dropped: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    unknown: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(SPLITS, 0))

    def split(self, name: str) -> list[np.ndarray]:
        """The sentences of split ``name`` ('train', 'valid' or 'test')."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; the splits are {', '.join(map(repr, SPLITS))}")
        return getattr(self, name)

    def padded(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as tokens (N, T_max) right-padded with PAD_ID, and lengths (N,)."""
        return pad_sequences(self.split(name), PAD_ID)

    def batches(
        self, split: str, batch_size: int, seed: int | None, *, drop_last: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches of split ``split``: tokens (B, T) right-padded with PAD_ID and lengths (B,);
        shuffled by ``seed`` (``None`` keeps the stored order). See ``batches``."""
        return batches(self.split(split), batch_size, seed, drop_last=drop_last, pad_value=PAD_ID)


def _read(
    path: str | os.PathLike, encoding: str, strip: bool, max_length: int, drop_long: bool
) -> tuple[list[tuple[int, str]], int]:
    """The non-blank lines of ``path`` as (line number, sentence), and how many were dropped for length."""
    try:
        return _read_lines(path, encoding, strip, max_length, drop_long)
    except UnicodeDecodeError as err:
        raise not_text(path, encoding, err) from None


def not_text(path: str | os.PathLike, encoding: str, err: UnicodeDecodeError) -> ValueError:
    """The error for a file that does not decode: names it and where it first fails, in one line."""
    return ValueError(f"{os.fspath(path)} is not valid {encoding}: {_undecodable(path, encoding, err)}; "
                      f"convert it to {encoding}")


def check_text(path: str | os.PathLike, encoding: str = "utf-8") -> None:
    """Raise ValueError (``not_text``) unless the whole of ``path`` decodes as ``encoding``; read in
    pieces of a megabyte, so a large file costs no more memory than that. Errors opening or
    reading it (OSError) pass through."""
    try:
        with open(path, encoding=encoding) as file:
            while file.read(1 << 20):
                pass
    except UnicodeDecodeError as err:
        raise not_text(path, encoding, err) from None


def _undecodable(path: str | os.PathLike, encoding: str, err: UnicodeDecodeError) -> str:
    """Where ``path`` first fails to decode, as "line N, byte B (0x..)", found by decoding it line by
    line (text files decode in chunks, so the error itself does not know the line)."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as line_err:
                return f"line {number}, byte {line_err.start + 1} (0x{raw[line_err.start]:02x})"
    return str(err)


def _read_lines(
    path: str | os.PathLike, encoding: str, strip: bool, max_length: int, drop_long: bool
) -> tuple[list[tuple[int, str]], int]:
    kept, dropped = [], 0
    with open(path, encoding=encoding) as file:
        for number, line in enumerate(file, start=1):
            sentence = line.strip() if strip else line.rstrip("\r\n")
            if not sentence:
                continue
            if len(sentence) > max_length:
                if not drop_long:
                    raise ValueError(
                        f"line {number} of {os.fspath(path)} has {len(sentence)} characters, more than "
                        f"max_length={max_length}; pass drop_long=True to drop such lines"
                    )
                dropped += 1
                continue
            kept.append((number, sentence))
    return kept, dropped


def _split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of train/valid/test for n sentences: valid and test rounded, train the rest."""
    if len(fractions) != 3 or any(not math.isfinite(f) or f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            f"fractions must be three positive numbers (train, valid, test) summing to 1, got {tuple(fractions)}"
        )
    n_valid, n_test = round(fractions[1] * n), round(fractions[2] * n)
    counts = (n - n_valid - n_test, n_valid, n_test)
    if min(counts) < 1:
        raise ValueError(f"{n} sentences are too few to split by fractions {tuple(fractions)}: got split sizes {counts}")
    return counts


def load_text(
    train: str | os.PathLike,
    valid: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int | None = None,
    max_length: int = MAX_LENGTH,
    drop_long: bool = False,
    strict: bool = False,
    strip: bool = True,
    encoding: str = "utf-8",
) -> Corpus:
    """Load a one-sentence-per-line corpus into a ``Corpus``.

    Parameters
    ----------
    train, valid, test : paths of the three splits; or ``train`` alone, which is then shuffled with
        ``numpy.random.default_rng(seed)`` and cut into ``fractions`` (train, valid, test) of its
        sentences (``seed`` is required then and unused otherwise)
    max_length : longest allowed sentence in characters; 288 follows Tran et al. ("a max sequence
        length of 288"; Ziegler and Rush write "less than 288 tokens")
    drop_long : drop longer sentences (counted in ``Corpus.dropped``) instead of raising ValueError
    strict : raise ValueError on a validation/test character missing from the training vocabulary
        instead of mapping it to UNK_ID
    strip : strip whitespace around each line (otherwise only the line break is removed)

    Raises ValueError for an empty split or corpus, a too-long sentence (without ``drop_long``), an
    unknown character (with ``strict``), bad fractions, or a corpus too small for them.
    """
    check_positive_int("max_length", max_length)
    if (valid is None) != (test is None):
        raise ValueError("give both valid and test paths, or neither (then train is split by fractions)")
    if valid is None:
        if seed is None:
            raise ValueError("splitting one file needs an explicit seed")
        lines, n_dropped = _read(train, encoding, strip, max_length, drop_long)
        if not lines:
            raise ValueError(f"empty corpus: {os.fspath(train)} has no sentences of 1 to {max_length} characters")
        counts = _split_counts(len(lines), fractions)
        order = np.random.default_rng(seed).permutation(len(lines))
        cut = np.cumsum(counts)[:-1]
        parts = [[lines[i] for i in idx] for idx in np.split(order, cut)]
        sources = [os.fspath(train)] * 3
        dropped = {"train": n_dropped, "valid": 0, "test": 0}
    else:
        parts, dropped, sources = [], {}, []
        for name, path in zip(SPLITS, (train, valid, test)):
            lines, dropped[name] = _read(path, encoding, strip, max_length, drop_long)
            if not lines:
                raise ValueError(
                    f"empty corpus: the {name} file {os.fspath(path)} has no sentences of 1 to {max_length} characters"
                )
            parts.append(lines)
            sources.append(os.fspath(path))
    vocab = Vocab.build([sentence for _, sentence in parts[0]])
    encoded, unknown = [], {}
    for name, lines, source in zip(SPLITS, parts, sources):
        arrays = []
        for number, sentence in lines:
            try:
                arrays.append(vocab.encode(sentence, strict=strict))
            except ValueError as err:
                raise ValueError(f"{name} split, line {number} of {source}: {err}") from None
        unknown[name] = int(sum((a == UNK_ID).sum() for a in arrays))
        encoded.append(arrays)
    return Corpus(vocab, *encoded, dropped=dropped, unknown=unknown)
