"""The memory estimates of the text and music models (``experiments.memory``): parameter counts
equal to what ``init`` draws, estimates that bound the peak tracemalloc measures for real training
and scoring steps within a factor of two, and the command refusing at once, in one line, a data
set whose models will not fit, while --quick stays small."""

from __future__ import annotations

import gc
import json
import pickle
import tracemalloc

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.cli import main
from mini_flows.experiments import memory
from mini_flows.experiments.memory import Footprint, baseline_footprint, bipartite_footprint, latent_footprint
from mini_flows.experiments.memory import require
from mini_flows.experiments.textflows import bipartite_lm
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel
from mini_flows.nn.tree import flatten
from mini_flows.optim import Adam

SMALL = dict(embed_size=16, hidden_size=32, num_layers=1)


def count(params) -> int:
    return sum(int(a.size) for a in flatten(params).values())


@pytest.mark.parametrize("vocab_size,length,flows,scale,hidden,layers", [
    (9, 12, 8, True, 64, 1), (80, 40, 2, False, 16, 1), (30, 7, 3, True, 8, 2), (5, 3, 1, False, 4, 0)])
def test_the_bipartite_flows_parameters_are_counted_exactly(vocab_size, length, flows, scale, hidden, layers):
    model = bipartite_lm(vocab_size, length, flows, scale, hidden, layers, spread=0.03)
    footprint = bipartite_footprint(vocab_size, length, flows, scale, hidden, layers)
    assert footprint.parameters == count(model.init(B.host_rng(0)))


@pytest.mark.parametrize("output", ["categorical", "bernoulli"])
@pytest.mark.parametrize("sizes", [SMALL, dict(embed_size=8, hidden_size=12, num_layers=2, tie_weights=False)])
def test_the_baselines_parameters_are_counted_exactly(output, sizes):
    config = BaselineConfig(11, 17, output=output, **sizes)
    assert baseline_footprint(config).parameters == count(LSTMBaseline(config).init(B.host_rng(0)))


@pytest.mark.parametrize("prior", ["af/af", "af/scf", "iaf/scf", "none/af", "af/none"])
@pytest.mark.parametrize("extra", [dict(), dict(transform="affine", latent_dim=5, num_layers=2, flow_layers=2,
                                                flow_hidden_sizes=(6, 7), prior_lstm_size=9, output="bernoulli")])
def test_the_latent_models_parameters_are_counted_exactly(prior, extra):
    config = LatentConfig(13, 19, prior=prior, **{**SMALL, "latent_dim": 4, "flow_hidden_sizes": (8,), **extra})
    assert latent_footprint(config).parameters == count(LatentFlowModel(config).init(B.host_rng(0)))


def peak_bytes(build, step, training: bool, dtype: str = "float64") -> int:
    """The peak tracemalloc sees from building and initialising a model to the end of a step:
    with ``training``, two steps of Adam with clipping (its state made by the first) on the
    gradients ``step(model, params)`` returns."""
    gc.collect()
    tracemalloc.start()
    try:
        model = build()
        params, optimizer = model.init(B.host_rng(0), dtype), Adam(lr=1e-3, clip_norm=1e-9)
        for _ in range(2 if training else 1):
            out = step(model, params)
            if training:
                optimizer.step(params, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_bounds(estimate: int, measured: int) -> None:
    assert measured <= estimate <= 2 * measured, f"estimate {estimate:,} for a measured peak of {measured:,} bytes"


@pytest.mark.parametrize("vocab_size,length,flows,hidden,rows", [(9, 12, 8, 64, 32), (300, 40, 2, 16, 256)])
def test_the_bipartite_estimate_bounds_a_measured_step(vocab_size, length, flows, hidden, rows):
    footprint = bipartite_footprint(vocab_size, length, flows, True, hidden, 1)
    x = B.asarray(np.random.default_rng(0).integers(0, vocab_size, size=(rows, length)))

    def build():
        return bipartite_lm(vocab_size, length, flows, True, hidden, 1, spread=0.03)

    assert_bounds(footprint.step_bytes(rows, 8, True), peak_bytes(build, lambda m, p: m.loss_and_grads(p, x)[1], True))
    assert_bounds(footprint.step_bytes(rows, 8, False), peak_bytes(build, lambda m, p: m.log_prob(p, x), False))


@pytest.mark.parametrize("kind,vocab_size,length,batch,samples,output,dtype", [
    ("lstm", 1000, 30, 8, 0, "categorical", "float64"), ("lstm", 88, 60, 16, 0, "bernoulli", "float32"),
    ("af/af", 10, 80, 8, 2, "categorical", "float64"), ("iaf/scf", 88, 40, 16, 5, "bernoulli", "float32"),
    ("af/scf", 1000, 20, 8, 2, "categorical", "float64"), ("none/af", 10, 40, 8, 3, "categorical", "float64")])
def test_the_sequence_model_estimates_bound_a_measured_step(kind, vocab_size, length, batch, samples, output, dtype):
    rng = np.random.default_rng(0)
    if output == "categorical":
        x = rng.integers(0, vocab_size, size=(batch, length))
    else:
        x = rng.random((batch, length, vocab_size)) < 0.1
    lengths = np.full(batch, length)
    itemsize, items = np.dtype(dtype).itemsize, batch * length
    if kind == "lstm":
        config = BaselineConfig(vocab_size, length, output=output, **SMALL)
        footprint, build = baseline_footprint(config), lambda: LSTMBaseline(config)
        training = peak_bytes(build, lambda m, p: m.loss_and_grads(p, B.asarray(x), B.asarray(lengths))[1], True,
                              dtype)
        scoring = peak_bytes(build, lambda m, p: m.log_prob(p, B.asarray(x), B.asarray(lengths)), False, dtype)
    else:
        config = LatentConfig(vocab_size, length, prior=kind, output=output, latent_dim=4, flow_hidden_sizes=(32,),
                              **SMALL)
        footprint, build = latent_footprint(config), lambda: LatentFlowModel(config)
        noise = rng.standard_normal((samples, batch, length, 4)).astype(dtype)
        training = peak_bytes(build, lambda m, p: m.elbo_and_grads(p, x, lengths, noise)[2], True, dtype)
        scoring = peak_bytes(build, lambda m, p: m.sample_terms(p, x, lengths, noise), False, dtype)
    assert_bounds(footprint.step_bytes(items, itemsize, True, samples), training)
    assert_bounds(footprint.step_bytes(items, itemsize, False, samples), scoring)


def test_a_step_counts_the_parameters_copies_and_each_items_activations():
    footprint = Footprint(parameters=100, per_item=10, per_sampled_item=3)
    assert footprint.step_bytes(5, 4, training=False) == 4 * (100 + 5 * 10)
    assert footprint.step_bytes(5, 8, training=True, samples=2) == 8 * (memory.TRAINING_COPIES * 100 + 5 * (10 + 6))


def test_require_refuses_the_largest_need_in_one_line_saying_what_to_change():
    needs = [("training the LSTM", 2 * 10**9), ("training AF / AF", 9 * 10**9)]
    with pytest.raises(ValueError) as refused:
        require(needs, "use shorter lines", available=4 * 10**9)
    assert str(refused.value) == ("training AF / AF needs about 9.0 GB, more than the 4.0 GB of memory available; "
                                  "use shorter lines")
    require(needs, "use shorter lines", available=10**10)


def test_the_memory_available_is_known_on_linux():
    available = memory.available_memory()
    total = int(open("/proc/meminfo").read().split("MemTotal:")[1].split()[0]) * 1024
    assert available is not None and 0 < available <= total


def one_line_refusal(capsys, argv, *fragments) -> str:
    """``argv`` refused, on NumPy (on CuPy nothing is estimated), in one line before any training."""
    assert main([*argv, "--backend", "numpy"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("mini-flows: error: ") and captured.err.count("\n") == 1, captured.err
    assert "step " not in captured.out  # refused before any model trained
    for fragment in fragments:
        assert fragment in captured.err
    return captured.err


def sentences(n: int, longest: int) -> str:
    words = "the a cat dog ran sat far near and so it goes on with to of in".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 30))) for _ in range(n)]
    return "\n".join([line[:longest] for line in lines] + ["x " * (longest // 2) + "y"[:longest % 2]])


def test_charlm_refuses_at_once_a_file_of_thousands_of_distinct_characters(tmp_path, capsys, monkeypatch):
    """The issue's CJK file: a bipartite flow of over a billion parameters, refused in one line,
    and the previous results are put back."""
    monkeypatch.setattr(memory, "available_memory", lambda: 16 * 10**9)
    text = tmp_path / "cjk.txt"
    characters = [chr(0x4E00 + i) for i in range(3000)] * 2
    text.write_text("\n".join("".join(characters[i:i + 100]) for i in range(0, 3000, 10)), encoding="utf-8")
    (tmp_path / "results.json").write_text(json.dumps({"experiment": "charlm"}))
    one_line_refusal(capsys, ["run", "charlm", "--steps", "1", "--data", str(text), "--out", str(tmp_path)],
                     "training the bipartite flow needs about ", "GB of memory available; use a --data file with fewer "
                     "distinct characters (3002 token ids) or shorter lines (the longest, of 100 characters")
    assert json.loads((tmp_path / "results.json").read_text()) == {"experiment": "charlm"}


def test_charlm_refuses_what_will_not_fit_and_quick_fits_in_half_a_gigabyte(tmp_path, capsys, monkeypatch):
    """The issue's 110-line English file with lines of up to 177 characters: the full models need
    more than 1 GB (the bipartite flow's training took 1.5 GB), --quick's less than 500 MB."""
    text = tmp_path / "english.txt"
    text.write_text(sentences(110, 177))
    monkeypatch.setattr(memory, "available_memory", lambda: 10**9)
    argv = ["run", "charlm", "--steps", "1", "--data", str(text), "--out", str(tmp_path / "out")]
    one_line_refusal(capsys, argv, "more than the 1.0 GB of memory available", "of 177 characters")
    monkeypatch.setattr(memory, "available_memory", lambda: 500 * 10**6)
    assert main(["run", "charlm", "--quick", "--data", str(text), "--out", str(tmp_path / "out"), "--backend",
                 "numpy"]) == 0


def test_charflows_refuses_a_file_of_thousands_of_distinct_characters(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * 10**9)
    text = tmp_path / "cjk.txt"
    text.write_text("".join(chr(0x4E00 + i) for i in range(3000)) * 2, encoding="utf-8")
    one_line_refusal(capsys, ["run", "charflows", "--steps", "1", "--data", str(text), "--out", str(tmp_path)],
                     "GB of memory available; use a --data file with fewer distinct characters")


def test_music_refuses_pieces_too_long_to_fit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 10**9)
    def piece() -> list[set[int]]:  # distinct steps: the loader refuses a file that repeats references
        return [{60, 64, 67 + t % 2} for t in range(3000)]

    path = tmp_path / "long.pickle"
    with open(path, "wb") as file:
        pickle.dump({"train": [piece() for _ in range(4)], "valid": [piece()[:10]], "test": [piece()]}, file)
    one_line_refusal(capsys, ["run", "music", "--quick", "--data", str(path), "--out", str(tmp_path / "out")],
                     "GB of memory available; use pieces of fewer steps (the longest, of 3000 steps")


def test_running_out_of_memory_anyway_is_one_line(tmp_path, capsys, monkeypatch):
    """Where nothing estimated it (CuPy's OutOfMemoryError on a GPU is a MemoryError too)."""
    def allocate(settings):
        raise MemoryError("Out of memory allocating 7,516,192,768 bytes (allocated so far: 1,024 bytes).")

    monkeypatch.setattr("mini_flows.experiments.xor.run", allocate)
    assert main(["run", "xor", "--quick", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == ("mini-flows: error: out of memory: Out of memory allocating 7,516,192,768 bytes "
                                       "(allocated so far: 1,024 bytes).\n")
