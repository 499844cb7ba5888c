"""Runs keep their models (issue 26, item 3): every model an experiment trains is saved under
--out/models with its configuration and listed in results.json; a checkpoint rebuilds its model bit
for bit; every model's ``sample`` takes the same arguments; samples decode as the data's own."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.cli import main
from mini_flows.discrete.bases import FactorizedCategorical
from mini_flows.discrete.model import DiscreteFlowModel, build_model
from mini_flows.experiments import settings as settings_module
from mini_flows.experiments.saved import MUSIC, decode, load_model, slug, text_decoder
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.xor import probability_table
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.model import LatentFlowModel
from mini_flows.nn.tree import flatten


@pytest.mark.parametrize("model_class", [DiscreteFlowModel, LatentFlowModel, LSTMBaseline])
def test_every_model_samples_with_the_same_arguments(model_class):
    parameters = list(inspect.signature(model_class.sample).parameters.values())
    assert [p.name for p in parameters[:4]] == ["self", "params", "n", "seed"]
    assert parameters[3].default is None
    assert all(p.default is not inspect.Parameter.empty for p in parameters[4:])  # extras stay keywords with defaults


@pytest.fixture
def kept(monkeypatch):
    """Every (label, model, params) that Settings.keep_model hands to save_model during the test."""
    seen = []
    original = settings_module.save_model

    def recording(out, index, label, model, params, decoder=None):
        seen.append((label, model, params))
        return original(out, index, label, model, params, decoder)

    monkeypatch.setattr(settings_module, "save_model", recording)
    return seen


def test_a_run_keeps_every_trained_model_and_its_checkpoint_rebuilds_it_bit_for_bit(tmp_path, kept, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "07-a-previous-run.npz").write_bytes(b"stale")
    assert main(["run", "xor", "--quick", "--out", str(tmp_path)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if " step " in line]
    assert progress and all(" nats/seq  " in line for line in progress)  # the loss's unit (issue 26, item 5)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["models"] == [
        {"label": "factorized base alone", "file": "models/01-factorized-base-alone.npz", "class": "DiscreteFlowModel"},
        {"label": "1 learnt flow + base", "file": "models/02-1-learnt-flow-base.npz", "class": "DiscreteFlowModel"}]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "01-factorized-base-alone.npz", "02-1-learnt-flow-base.npz"]  # the previous run's checkpoint is gone
    tokens = B.asarray([[0, 0], [0, 1], [1, 0], [1, 1]])
    assert [label for label, _, _ in kept] == [entry["label"] for entry in record["models"]]
    for (label, trained, params), entry in zip(kept, record["models"]):
        model, loaded = load_model(tmp_path, entry)
        assert model.config == trained.config
        assert flatten(loaded).keys() == flatten(params).keys()
        for name, value in flatten(params).items():
            assert np.array_equal(B.to_numpy(flatten(loaded)[name]), B.to_numpy(value))
        assert np.array_equal(B.to_numpy(model.log_prob(loaded, tokens)), B.to_numpy(trained.log_prob(params, tokens)))
        assert probability_table(model.log_prob(loaded, tokens)) == record["results"]["learnt"][label]["table"]


def test_a_rebuilt_sequence_model_generates_what_the_trained_one_did(tmp_path, capsys):
    """charlm prints three samples of each model (seed + 3); ``mini-flows sample`` on its folder,
    from the checkpoints alone, prints the same text for the LSTM, the bipartite flow and a latent
    flow model."""
    assert main(["run", "charlm", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    progress = [line for line in out.splitlines() if " step " in line and "elapsed" in line]
    assert all((" nats/seq  " if "bipartite" in line or "factorized base" in line else " nats/char  ") in line
               for line in progress)
    record = json.loads((tmp_path / "results.json").read_text())
    assert [entry["class"] for entry in record["models"]] == \
        ["LSTMBaseline", "DiscreteFlowModel", "DiscreteFlowModel"] + ["LatentFlowModel"] * 7
    assert all(entry["decoder"]["kind"] == "text" for entry in record["models"])
    for label in ("LSTM", "bipartite flow", "AF / SCF"):
        printed = next(line for line in out.splitlines() if line.startswith(f"- samples, {label}: "))
        assert main(["sample", str(tmp_path), "--model", label, "-n", "3", "--seed", "3"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert printed == f"- samples, {label}: " + " | ".join(map(repr, lines))


def test_piano_rolls_sample_as_midi_notes(tmp_path, capsys):
    assert main(["run", "music", "--quick", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    record = json.loads((tmp_path / "results.json").read_text())
    assert [entry["label"] for entry in record["models"]] == ["LSTM", "AF / AF", "AF / SCF", "IAF / SCF"]
    assert all(entry["decoder"] == MUSIC for entry in record["models"])
    assert main(["sample", str(tmp_path), "--model", "IAF / SCF", "-n", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        for step in line.split(" | "):
            assert step == "-" or all(21 <= int(note) <= 108 for note in step.split())


def test_decoders_read_text_music_and_numbers():
    decoder = text_decoder(lambda ids: "abc"[int(ids[0])], 3, end=3)
    assert decoder == {"kind": "text", "table": ["a", "b", "c"], "end": 3}
    assert decode(np.array([2, 0, 1, 3, 0]), decoder) == "cab"  # cut at the end token
    assert decode(np.array([2, 0]), {**decoder, "end": None}) == "ca"
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 3\)"):
        decode(np.array([1, 4]), decoder)
    roll = np.zeros((3, 88))
    roll[0, [39, 43]] = roll[2, 0] = 1  # middle C (MIDI 60) and E; then silence; then the lowest A (21)
    assert decode(roll, MUSIC) == "60 64 | - | 21"
    assert decode(np.array([3, 0, 1]), None) == "3 0 1"
    assert decode(np.array([0.5, -2.0]), None) == "0.5 -2"


def test_keep_model_refuses_a_model_it_could_not_rebuild(tmp_path):
    settings = Settings(out=tmp_path)
    by_hand = DiscreteFlowModel(FactorizedCategorical(2, 3))
    with pytest.raises(ValueError, match="cannot keep 'by hand': the model has no config"):
        settings.keep_model("by hand", by_hand, by_hand.init(B.host_rng(0)))
    model = build_model("bipartite", 3, 2, num_flows=0)
    with pytest.raises(ValueError, match="decoder kind must be 'text' or 'music'"):
        settings.keep_model("odd decoder", model, model.init(B.host_rng(0)), {"kind": "braille"})
    assert settings.models == []


def test_labels_become_file_names():
    assert slug("AF / AF - AF hidden, NLSq") == "af-af-af-hidden-nlsq"
    assert slug("AR base states 3, D = 9, J = 0.1") == "ar-base-states-3-d-9-j-0-1"
    assert slug("+++") == "model"


def test_nlsq2d_keeps_its_continuous_flow_models_and_they_sample_points(tmp_path, capsys):
    assert main(["run", "nlsq2d", "--quick", "--out", str(tmp_path)]) == 0
    models = json.loads((tmp_path / "results.json").read_text())["models"]
    assert [m["class"] for m in models] == ["ContinuousFlowModel"] * 2
    capsys.readouterr()
    assert main(["sample", str(tmp_path), "--model", models[0]["label"], "-n", "3"]) == 0
    rows = capsys.readouterr().out.split("\n")[:3]
    assert all(len(row.split()) == 2 and all(math.isfinite(float(v)) for v in row.split()) for row in rows)
