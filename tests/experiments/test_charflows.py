"""The bipartite flow language model of ``charflows`` and ``charlm``: normalized over every row
by enumeration, so the sentences its rows decode to carry probability 1 as well and a padded
row's likelihood bounds its sentence's from below; base-first training, which never ends worse
than the base on the validation rows; and ``charflows --data`` on a text file."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.cli import main
from mini_flows.data.fixed_length import is_padded, strip_rows
from mini_flows.experiments import Settings
from mini_flows.experiments.evaluation import mean_nll
from mini_flows.experiments.textflows import base_first, bipartite_lm, train_bipartite


@pytest.mark.parametrize("scale, layers", [(False, 1), (True, 2)])
def test_every_row_and_every_sentence_sums_to_one(scale, layers):
    K, D, end = 3, 4, 2  # characters 0 and 1, the end token 2
    model = bipartite_lm(K, D, num_flows=3, scale=scale, hidden=8, layers=layers, spread=0.03)
    params = model.init(B.host_rng(5))
    rows = np.array(list(itertools.product(range(K), repeat=D)))
    p = np.exp(B.to_numpy(model.log_prob(params, B.asarray(rows))))
    assert abs(p.sum() - 1) < 1e-12
    sentences: dict[tuple, float] = {}
    for row, sentence in zip(rows, strip_rows(rows, end)):
        sentences[tuple(sentence)] = sentences.get(tuple(sentence), 0.0) + p[rows.tolist().index(row.tolist())]
    assert len(sentences) == sum(2 ** t for t in range(D + 1)) and abs(sum(sentences.values()) - 1) < 1e-12
    padded = is_padded(rows, end)
    for row, q in zip(rows[padded], p[padded]):  # the padded row is one of the rows of its sentence
        (sentence,) = strip_rows(row[None], end)
        assert q <= sentences[tuple(sentence)] + 1e-15
    assert padded.sum() == len(sentences)


@pytest.mark.parametrize("network", ["mlp", "lstm"])
def test_base_first_flows_start_as_the_trained_base_and_never_end_worse_on_validation(network, tmp_path):
    rng = np.random.default_rng(0)
    rows, valid = rng.integers(0, 4, (96, 6)), rng.integers(0, 4, (20, 6))
    settings = Settings(out=tmp_path, verbose=False)
    base = bipartite_lm(4, 6, 0, False, 8, 1, 0.03)
    base_params, history = train_bipartite("base", base, rows, valid, 6, settings)
    base_score = mean_nll(lambda t: base.log_prob(base_params, t), B.asarray(valid))
    assert base_score == min(history["valid"])
    model = bipartite_lm(4, 6, 2, True, 8, 1, 0.03, network)
    params, history = base_first("flows", model, base_params["base"], rows, valid, 6, settings)
    assert history["valid"][0] == base_score and history["valid_step"] == list(range(7))
    assert mean_nll(lambda t: model.log_prob(params, t), B.asarray(valid)) == min(history["valid"]) <= base_score


def test_bipartite_lm_refuses_an_unknown_network():
    with pytest.raises(ValueError, match="unknown bipartite network 'gru'; choose from 'transformer', 'mlp', 'lstm'"):
        bipartite_lm(4, 6, 1, False, 8, 1, 0.03, "gru")


def test_charflows_trains_on_a_text_file_and_prints_samples(tmp_path, capsys):
    text = tmp_path / "prose.txt"
    text.write_text("\n".join(f"the {w} sat on the mat and looked at the {v}." for w in ("cat", "dog", "owl")
                              for v in ("sun", "moon", "rain", "sea")) * 3)
    assert main(["run", "charflows", "--quick", "--data", str(text), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["results"]["source_nll"] is None
    bpc = [m["bpc"] for m in record["results"]["models"].values()]
    assert all(0 < b < 10 for b in bpc)
    assert "prose.txt cut into chunks of 16 characters" in out and "samples, base only: '" in out


def test_charlm_scores_the_bipartite_flow_and_times_its_generation_beside_the_lstms(tmp_path, capsys):
    assert main(["run", "charlm", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert 0 < results["models"]["bipartite flow"]["nll"] < 10
    timing = results["generation_seconds"]
    assert timing["T"] == 12 and timing["batches"] == [1, 64]
    assert all(len(timing[name]) == 2 and min(timing[name]) > 0 for name in ("LSTM", "bipartite flow"))
    assert "LSTM / bipartite flow: " in out and "samples, bipartite flow: '" in out and "samples, IAF / SCF: '" in out
