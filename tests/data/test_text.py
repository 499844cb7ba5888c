"""Text corpora: vocabulary and <unk> rule, length limit, empty corpora, splits, padded batches."""

from __future__ import annotations

import string
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows.data.text import MAX_LENGTH, PAD_ID, UNK_ID, Vocab, batches, check_text, load_text, pad_sequences

seeds = st.integers(0, 2**32 - 1)
sentences = st.text(alphabet=string.ascii_letters + " .,'", max_size=30).map(lambda s: "x" + s.strip())


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def three_files(tmp_path):
    return (
        write(tmp_path / "train.txt", ["the cat", "a dog", "", "  cats  "]),
        write(tmp_path / "valid.txt", ["the dog"]),
        write(tmp_path / "test.txt", ["the zebra!", "act"]),
    )


def test_vocabulary_comes_from_train_with_pad_and_unk_first(three_files):
    corpus = load_text(*three_files)
    assert corpus.vocab.chars == tuple(sorted(set("the cat" + "a dog" + "cats")))
    assert corpus.vocab.size == len(corpus.vocab.chars) + 2
    assert [corpus.vocab.decode(s) for s in corpus.train] == ["the cat", "a dog", "cats"]
    assert all(s.dtype == np.int64 and s.min() >= 2 for s in corpus.train)


def test_unknown_test_characters_map_to_unk_and_are_counted(three_files):
    corpus = load_text(*three_files)
    zebra = corpus.test[0]
    assert corpus.vocab.decode(zebra) == "the <unk>e<unk><unk>a<unk>"
    assert np.flatnonzero(zebra == UNK_ID).tolist() == [4, 6, 7, 9]
    assert corpus.unknown == {"train": 0, "valid": 0, "test": 4}


def test_strict_mode_raises_naming_file_line_and_character(three_files):
    with pytest.raises(ValueError, match=r"test split, line 1 of .*test\.txt: unknown character 'z'"):
        load_text(*three_files, strict=True)


def test_a_sentence_longer_than_max_length_raises_naming_the_line(tmp_path):
    path = write(tmp_path / "train.txt", ["ok", "a" * MAX_LENGTH, "b" * (MAX_LENGTH + 1)])
    with pytest.raises(ValueError, match=r"line 3 of .*train\.txt has 289 characters, more than max_length=288"):
        load_text(path, seed=0, fractions=(0.4, 0.3, 0.3))


def test_drop_long_drops_and_counts(tmp_path):
    lines = ["abc", "abcdef", "ab", "abcdefg", "a", "bc"]
    files = [write(tmp_path / f"{name}.txt", lines) for name in ("train", "valid", "test")]
    corpus = load_text(*files, max_length=5, drop_long=True)
    assert corpus.dropped == {"train": 2, "valid": 2, "test": 2}
    assert [corpus.vocab.decode(s) for s in corpus.train] == ["abc", "ab", "a", "bc"]


def test_strip_false_keeps_surrounding_spaces(tmp_path):
    files = [write(tmp_path / f"{name}.txt", [" a b "]) for name in ("train", "valid", "test")]
    assert load_text(*files, strip=False).vocab.decode(load_text(*files, strip=False).train[0]) == " a b "


@pytest.mark.parametrize("which", [0, 1, 2])
def test_an_empty_split_file_raises(three_files, which):
    files = list(three_files)
    files[which] = write(files[which], ["", "   "])
    with pytest.raises(ValueError, match=r"empty corpus: the (train|valid|test) file"):
        load_text(*files)


def test_an_empty_single_file_raises(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        load_text(write(tmp_path / "all.txt", []), seed=0)


def test_valid_without_test_raises(three_files):
    with pytest.raises(ValueError, match="both valid and test"):
        load_text(three_files[0], three_files[1])


def test_splitting_one_file_needs_a_seed(three_files):
    with pytest.raises(ValueError, match="explicit seed"):
        load_text(three_files[0])


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, 0.1), (1.0, 0.0, 0.0), (0.8, float("nan"), 0.2)])
def test_bad_fractions_raise(three_files, fractions):
    with pytest.raises(ValueError, match="fractions must be three positive numbers"):
        load_text(three_files[0], seed=0, fractions=fractions)


def test_too_few_sentences_for_the_fractions_raise(tmp_path):
    with pytest.raises(ValueError, match=r"2 sentences are too few"):
        load_text(write(tmp_path / "all.txt", ["ab", "cd"]), seed=0)


@given(st.lists(sentences, min_size=3, max_size=40), seeds)
def test_one_file_split_is_a_seeded_partition_with_the_given_fractions(tmp_path_factory, lines, seed):
    note(f"lines={lines}")
    path = write(tmp_path_factory.mktemp("split") / "all.txt", lines)
    fractions = (0.5, 0.25, 0.25)
    corpus = load_text(path, seed=seed, fractions=fractions)
    again = load_text(path, seed=seed, fractions=fractions)
    decoded = {name: [corpus.vocab.decode(s) for s in corpus.split(name)] for name in ("train", "valid", "test")}
    with_unk = [''.join(c if c in corpus.vocab.chars else "<unk>" for c in line) for line in lines]
    assert Counter(decoded["train"] + decoded["valid"] + decoded["test"]) == Counter(with_unk)
    assert len(decoded["valid"]) == round(0.25 * len(lines)) and len(decoded["test"]) == round(0.25 * len(lines))
    assert all(np.array_equal(a, b) for a, b in zip(corpus.test, again.test))
    assert set(corpus.vocab.chars) == set("".join(decoded["train"]))


@given(st.lists(sentences, min_size=1, max_size=12))
def test_vocab_encode_decode_round_trip(lines):
    vocab = Vocab.build(lines)
    assert [vocab.decode(vocab.encode(s)) for s in lines] == lines


def test_vocab_rejects_repeats_and_bad_ids():
    with pytest.raises(ValueError, match="must not repeat"):
        Vocab(("a", "a"))
    with pytest.raises(ValueError, match="single characters"):
        Vocab(("ab",))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 4\)"):
        Vocab(("a", "b")).decode([2, 4])


def test_corpus_rejects_an_unknown_split(three_files):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_text(*three_files).split("dev")


def test_padded_split_is_right_padded_with_pad_id(three_files):
    corpus = load_text(*three_files)
    tokens, lengths = corpus.padded("train")
    assert tokens.shape == (3, 7) and lengths.tolist() == [7, 5, 4]
    assert np.all(tokens[1, 5:] == PAD_ID) and np.all(tokens[2, 4:] == PAD_ID)


@given(st.lists(st.integers(1, 9), min_size=1, max_size=30), st.integers(1, 8), seeds, st.booleans())
def test_batches_visit_every_sequence_once_padded_on_the_right(lengths, batch_size, seed, drop_last):
    sequences = [np.full(n, i + 1) for i, n in enumerate(lengths)]
    seen = []
    for tokens, lens in batches(sequences, batch_size, seed, drop_last=drop_last):
        assert tokens.shape == (len(lens), lens.max()) and len(lens) <= batch_size
        for row, n in zip(tokens, lens):
            assert np.all(row[n:] == PAD_ID) and np.all(row[:n] == row[0]) and n == lengths[row[0] - 1]
            seen.append(int(row[0]))
    expected = len(lengths) - len(lengths) % batch_size if drop_last else len(lengths)
    assert len(seen) == len(set(seen)) == expected
    if drop_last:
        assert all(len(lens) == batch_size for _, lens in batches(sequences, batch_size, seed, drop_last=True))


def test_batches_without_a_seed_keep_order_and_a_seed_repeats_its_shuffle(three_files):
    corpus = load_text(*three_files)
    ordered = [t for t, _ in corpus.batches("train", 1, None)]
    assert all(np.array_equal(t[0], s) for t, s in zip(ordered, corpus.train))
    first = [t.tolist() for t, _ in corpus.batches("train", 2, 7)]
    assert first == [t.tolist() for t, _ in corpus.batches("train", 2, 7)]


def test_batch_size_and_padding_errors():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        next(batches([np.zeros(2)], 0, 0))
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_sequences([])
    with pytest.raises(ValueError, match=r"sequence 1 has shape \(2, 3\)"):
        pad_sequences([np.zeros((2, 2)), np.zeros((2, 3))])


def test_padding_keeps_every_value_in_the_sequences_common_dtype():
    """Issue 24, item 9: an int sequence first and a float one after gave an int array, 0.5 became 0."""
    padded, lengths = pad_sequences([np.array([1, 2]), np.array([0.5]), np.array([True])], pad_value=-1)
    assert padded.dtype == np.float64 and lengths.tolist() == [2, 1, 1]
    np.testing.assert_array_equal(padded, [[1.0, 2.0], [0.5, -1.0], [1.0, -1.0]])
    many = pad_sequences([np.zeros(1, np.int8)] * 40 + [np.zeros(1, np.float32)])[0]  # more than NumPy 1's 32 arguments
    assert many.dtype == np.float32


def test_a_file_in_another_encoding_names_the_file_line_and_byte(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("the first line\nla caf\u00e9 est ouverte\n".encode("latin-1") + b"more text\n" * 10)
    with pytest.raises(ValueError, match=r"latin\.txt is not valid utf-8: line 2, byte 7 \(0xe9\); convert it to "
                                         r"utf-8$"):
        load_text(path, seed=0)
    assert load_text(path, seed=0, encoding="latin-1") is not None


def test_the_command_line_reports_a_bad_encoding_in_one_line(tmp_path, capsys):
    from mini_flows.cli import main

    path = tmp_path / "corpus.txt"
    path.write_bytes(b"fine\n\xff\xfe broken\n")
    assert main(["run", "charlm", "--quick", "--data", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "corpus.txt is not valid utf-8: line 2, byte 1 (0xff)" in err


@given(st.lists(st.integers(1, 30), min_size=1, max_size=60), st.integers(1, 8), st.integers(1, 4), st.integers(0, 9))
def test_pooled_batches_hold_every_sequence_once_and_sort_each_pool(lengths, batch_size, pool, seed):
    sequences = [np.full(n, i) for i, n in enumerate(lengths)]  # each row's value names its sequence
    found = [[int(row[0]) for row in padded] for padded, _ in batches(sequences, batch_size, seed, pool=pool)]
    assert sorted(i for batch in found for i in batch) == list(range(len(lengths)))
    order = np.random.default_rng(seed).permutation(len(lengths))
    pool_of = {int(i): k // (pool * batch_size) for k, i in enumerate(order)}
    for k in set(pool_of.values()):  # a pool's batches hold consecutive runs of its lengths, sorted
        runs = sorted(([lengths[i] for i in batch] for batch in found if pool_of[batch[0]] == k), key=min)
        assert all(max(a) <= min(b) for a, b in zip(runs, runs[1:]))
    for batch in found:
        assert len({pool_of[i] for i in batch}) == 1


def test_pooled_batches_pad_less_and_need_a_seed():
    rng = np.random.default_rng(0)
    sequences = [np.zeros(n) for n in rng.integers(10, 200, 256)]
    padded = {pool: np.mean([x.shape[1] for x, _ in batches(sequences, 32, 1, pool=pool)]) for pool in (None, 8)}
    assert padded[8] < 0.8 * padded[None]
    with pytest.raises(ValueError, match="pool needs a seed"):
        next(batches(sequences, 32, None, pool=2))


def test_check_text_reads_a_whole_file_and_names_where_it_fails(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes(b"a line of text\n" * 100_000 + b"\xc3(\n")  # the bad byte lies past the first megabyte
    with pytest.raises(ValueError, match=r"late\.txt is not valid utf-8: line 100001, byte 1 \(0xc3\)"):
        check_text(path)
    path.write_text("caf\u00e9\n" * 10)
    check_text(path)
