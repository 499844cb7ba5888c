"""Text as fixed-length rows: sentences padded with an end token (decoded back by stripping at the
first end token) and a stream cut into chunks, from a file split in order."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows.data.fixed_length import chunk_rows, is_padded, load_chunks, pad_rows, strip_rows
from mini_flows.data.text import UNK_ID


def test_pad_rows_fills_with_the_end_token_and_strip_rows_undoes_it():
    sentences = [np.array([0, 1]), np.array([2, 2, 2, 1]), np.array([1])]
    rows = pad_rows(sentences, 4, end=3)
    assert rows.tolist() == [[0, 1, 3, 3], [2, 2, 2, 1], [1, 3, 3, 3]]
    assert [s.tolist() for s in strip_rows(rows, 3)] == [s.tolist() for s in sentences]
    assert is_padded(rows, 3).all()


def test_every_row_decodes_to_one_sentence_and_only_padded_rows_count_as_padded():
    rows = np.array([[3, 0, 3, 3], [0, 3, 1, 3], [3, 3, 3, 3]])
    assert [s.tolist() for s in strip_rows(rows, 3)] == [[], [0], []]
    assert is_padded(rows, 3).tolist() == [False, False, True]


@pytest.mark.parametrize("sentences, message", [
    ([np.array([0, 1, 2])], "1 to 2 tokens"),
    ([np.array([], dtype=int)], "1 to 2 tokens"),
    ([np.array([0, 3])], "sentence 0 holds the end token 3"),
    ([], "at least one sentence"),
])
def test_pad_rows_refuses_what_it_cannot_pad(sentences, message):
    with pytest.raises(ValueError, match=message):
        pad_rows(sentences, 2, end=3)


def test_chunk_rows_cuts_consecutive_chunks_and_drops_the_remainder():
    assert chunk_rows(np.arange(7), 3).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="no chunk of 8"):
        chunk_rows(np.arange(7), 8)


def test_load_chunks_splits_the_text_in_order_and_maps_unseen_characters_to_unk(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("ab" * 20 + "\n\n  abababxyz\n")  # 50 characters once joined: 40 train, 5 valid, 5 test
    chunks = load_chunks(path, 4)
    assert chunks.train.shape == (10, 4) and chunks.valid.shape == (1, 4) and chunks.test.shape == (1, 4)
    assert chunks.vocab.decode(chunks.train[0]) == "abab"
    assert chunks.vocab.decode(chunks.valid[0]) == "<unk>aba"  # no line break in the training part
    assert chunks.vocab.decode(chunks.test[0]) == "ab<unk><unk>" and (chunks.test == UNK_ID).sum() == 2


def test_load_chunks_names_a_file_too_short_for_a_chunk(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("tiny\n")
    with pytest.raises(ValueError, match="short.txt: its training part has 3 characters"):
        load_chunks(path, 4)


def test_load_chunks_names_a_file_that_is_not_text_and_where(tmp_path):
    path = tmp_path / "binary.bin"
    path.write_bytes(b"two fine\nlines\n\x00\x9c\xffbinary" * 3)
    with pytest.raises(ValueError, match=r"binary\.bin is not valid utf-8: line 3, byte 2 \(0x9c\); convert it to "
                                         r"utf-8$"):
        load_chunks(path, 4)
