"""Text as rows of one fixed length D, for models of {0, ..., K-1}^D such as a discrete bipartite
flow, whose bijections need every sequence the same length (Tran et al. 2019, sections 4.4, 4.5).

Two ways to get there, as the paper's two data sets:

- **Sentences padded with an end token** (Penn Treebank, section 4.4). A sentence of T <= D
  characters becomes its T tokens followed by D - T copies of ``end``, a token that never occurs
  inside a sentence. A model q over all K^D rows (K counting ``end``) is normalized there, and
  every row decodes to one sentence, its tokens before the first ``end`` (``strip_rows``), so q
  induces a normalized distribution p over sentences of 0 to D characters. The likelihood a model
  reports for a sentence is q of its padded row, the one row with nothing but ``end`` after the
  first ``end`` (``is_padded``); the other rows that decode to the same sentence only add to p, so
  -log q(padded row) >= -log p(sentence): an exact likelihood of a normalized distribution over
  rows, and an upper bound on the sentence's NLL, tight when q puts no mass on rows that are not
  padded (the share of samples that are not is that mass's estimate). Bits per character divide
  by the sentences' characters, not by D, as for the LSTM, whose NLL includes log p(T).
- **Fixed-length chunks** (text8, section 4.5). A stream of text is cut into consecutive chunks of
  D characters (the remainder dropped); each chunk is one row, all D characters scored.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Sequence

import numpy as np

from mini_flows.checks import check_positive_int
from mini_flows.data.text import Vocab, not_text


def pad_rows(sequences: Sequence[np.ndarray], length: int, end: int) -> np.ndarray:
    """Sentences (T_n,) of ints, 1 <= T_n <= length, none holding ``end`` -> rows (N, length)
    int64: each sentence followed by ``end`` up to ``length``. ValueError naming the first
    sentence that is too long, empty or holds ``end``."""
    check_positive_int("length", length)
    if len(sequences) == 0:
        raise ValueError("pad_rows needs at least one sentence")
    rows = np.full((len(sequences), length), end, dtype=np.int64)
    for n, sentence in enumerate(sequences):
        tokens = np.asarray(sentence, dtype=np.int64)
        if tokens.ndim != 1 or not 1 <= len(tokens) <= length:
            raise ValueError(f"sentence {n} has shape {tokens.shape}; each must have 1 to {length} tokens")
        if (tokens == end).any():
            raise ValueError(f"sentence {n} holds the end token {end} inside it")
        rows[n, :len(tokens)] = tokens
    return rows


def strip_rows(rows: np.ndarray, end: int) -> list[np.ndarray]:
    """Rows (N, D) -> the sentence each decodes to: its tokens before the first ``end`` (all D
    where it has none)."""
    rows = np.asarray(rows)
    ends = np.where((rows == end).any(axis=1), (rows == end).argmax(axis=1), rows.shape[1])
    return [row[:stop] for row, stop in zip(rows, ends)]


def is_padded(rows: np.ndarray, end: int) -> np.ndarray:
    """(N,) bool: the row is a padded sentence, ``end`` everywhere after its first ``end`` (the
    rows ``pad_rows`` makes; every other row decodes to a sentence too, but is not its padding).
    A row of ``end`` only (the empty sentence) counts as padded."""
    rows = np.asarray(rows)
    after_end = np.cumsum(rows == end, axis=1) > 0
    return ~(after_end & (rows != end)).any(axis=1)


def chunk_rows(tokens: np.ndarray, length: int) -> np.ndarray:
    """A token stream (N,) -> its consecutive chunks (N // length, length), the remainder dropped.
    ValueError when the stream is shorter than one chunk."""
    check_positive_int("length", length)
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or len(tokens) < length:
        raise ValueError(f"a stream of {tokens.size} tokens holds no chunk of {length}")
    n = len(tokens) // length
    return tokens[:n * length].reshape(n, length)


class Chunks(NamedTuple):
    """A text file cut into chunks: the vocabulary (``text.Vocab``, built from the training part)
    and rows (N, D) int64 of the training, validation and test parts."""

    vocab: Vocab
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def load_chunks(path: str | os.PathLike, length: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                encoding: str = "utf-8") -> Chunks:
    """The text of ``path`` as chunks of ``length`` characters (text8's set-up at any length).

    Each non-blank line is stripped and the lines are joined by one "\\n" (so a file with one
    sentence per line keeps its sentence ends as a character). The stream is split in order, as
    text8's 90M/5M/5M: the first ``fractions[0]`` of its characters train, the next
    ``fractions[1]`` validate, the rest test; each part is cut into chunks (``chunk_rows``).
    Characters of the validation and test parts missing from the training part become
    ``text.UNK_ID``. ValueError when a part holds no chunk, or where the file does not decode
    (naming it and the line, ``text.not_text``).
    """
    try:
        with open(path, encoding=encoding) as file:
            text = "\n".join(line.strip() for line in file if line.strip())
    except UnicodeDecodeError as err:
        raise not_text(path, encoding, err) from None
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    cut = np.cumsum([int(f * len(text)) for f in fractions[:2]])
    parts = [text[:cut[0]], text[cut[0]:cut[1]], text[cut[1]:]]
    vocab = Vocab.build([parts[0]])
    rows = []
    for name, part in zip(("training", "validation", "test"), parts):
        if len(part) < length:
            raise ValueError(f"{os.fspath(path)}: its {name} part has {len(part)} characters, fewer than one chunk "
                             f"of {length}; give a longer file")
        rows.append(chunk_rows(vocab.encode(part), length))
    return Chunks(vocab, *rows)
