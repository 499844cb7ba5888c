"""Training and evaluation: the KL schedule, the loop's contract (seeded, input untouched, history,
progress, dropout), errors, and learning on the synthetic sources of mini_flows.data: the HMM
character source (whose exact NLL the model approaches) and the chord piano rolls."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.data.chords import make_chords
from mini_flows.data.hmm import make_hmm
from mini_flows.data.text import batches
from mini_flows.latent import LatentConfig, LatentFlowModel, LengthPrior
from mini_flows.latent.train import KL_MIN, evaluate, kl_weight, train
from mini_flows.nn.tree import flatten
from mini_flows.train import Progress
from tests.latent.common import small_model


def test_kl_weight_anneals_linearly_after_a_flat_start():
    weights = [kl_weight(step, (3, 4)) for step in range(9)]
    np.testing.assert_allclose(weights[:3], KL_MIN)
    np.testing.assert_allclose(weights[3:], [KL_MIN + (1 - KL_MIN) * k / 4 for k in (1, 2, 3, 4, 4, 4)])
    assert kl_weight(0, (0, 0)) == 1.0 and kl_weight(5, (6, 0)) == KL_MIN and kl_weight(6, (6, 0)) == 1.0


def _toy_batches(n=4, batch=3, T=4, K=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, K, size=(batch, T)), rng.integers(1, T + 1, size=batch)) for _ in range(n)]


def _host_leaves(tree):
    return {name: B.to_numpy(value) for name, value in flatten(tree).items()}


def test_train_is_seeded_leaves_its_input_alone_and_reports(capsys):
    model = small_model("af/af", K=3, H=2, max_length=4)
    params = model.init(B.host_rng(0))
    before = {k: B.to_numpy(v).copy() for k, v in flatten(params).items()}
    new, history = train(model, params, _toy_batches(), 6, seed=1, samples=2, kl_schedule=(2, 2), dropout=0.3,
                         reporter=Progress("latent", 6, reports=2, warn_rise=False))
    lines = capsys.readouterr().out.splitlines()
    again, _ = train(model, params, _toy_batches(), 6, seed=1, samples=2, kl_schedule=(2, 2), dropout=0.3)
    new, again, untouched = (_host_leaves(tree) for tree in (new, again, params))
    for name in before:
        np.testing.assert_array_equal(untouched[name], before[name])  # the input is untouched
        np.testing.assert_array_equal(again[name], new[name])  # same seed, same result
    assert any(np.any(new[name] != before[name]) for name in before)
    assert set(history) == {"step", "loss", "rec", "kl", "kl_weight", "grad_norm", "seconds"}
    assert history["step"] == list(range(6)) and all(len(v) == 6 for v in history.values())
    np.testing.assert_allclose(history["kl_weight"], [kl_weight(s, (2, 2)) for s in range(6)])
    rec, kl, w = (np.array(history[key]) for key in ("rec", "kl", "kl_weight"))
    np.testing.assert_allclose(history["loss"], -(rec - w * kl))
    assert len(lines) == 2 and "step     3/6" in lines[0] and "step     6/6" in lines[1]
    assert all(f"{key} " in line for key in ("rec", "kl", "kl_weight") for line in lines)
    assert lines[1].endswith("0.0s left")
    without = _host_leaves(train(model, params, _toy_batches(), 6, seed=1, samples=2, kl_schedule=(2, 2))[0])
    assert any(np.any(without[name] != new[name]) for name in before)  # dropout changes training


def test_train_reads_a_callable_per_epoch_and_a_one_shot_iterator():
    model = small_model("iaf/scf", K=3, H=2, max_length=4)
    params = model.init(B.host_rng(0))
    epochs = []

    def per_epoch(epoch):
        epochs.append(epoch)
        return iter(_toy_batches(n=2, seed=epoch))

    train(model, params, per_epoch, 5, seed=0, samples=1)
    assert epochs == [0, 1, 2]
    train(model, params, iter(_toy_batches(n=3)), 3, seed=0, samples=1)
    with pytest.raises(ValueError, match="ran out"):
        train(model, params, iter(_toy_batches(n=3)), 4, seed=0, samples=1)
    with pytest.raises(ValueError, match="no batch"):
        train(model, params, [], 1, seed=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=0), "steps must be"),
        (dict(samples=0), "samples must be"),
        (dict(kl_schedule=(1,)), "kl_schedule must be two integers"),
        (dict(kl_schedule=(-1, 2)), "kl_schedule must be two integers"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(lr=0.0), "lr must be"),
        (dict(clip=-1.0), "clip_norm must be"),
    ],
)
def test_bad_training_arguments_raise(kwargs, match):
    model = small_model("af/af", K=3, H=2, max_length=4)
    args = dict(steps=2, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        train(model, model.init(B.host_rng(0)), _toy_batches(), **args)


def test_dropout_with_an_iaf_prior_raises():
    model = small_model("iaf/scf", K=3, H=2, max_length=4)
    with pytest.raises(ValueError, match="AF-in-time"):
        train(model, model.init(B.host_rng(0)), _toy_batches(), 2, seed=0, dropout=0.2)


def test_evaluate_reports_consistent_parts():
    model = small_model("af/scf", K=3, H=2, max_length=4)
    model.fit_lengths(np.array([1, 2, 3, 4, 4]))
    data = _toy_batches()
    result = evaluate(model, model.init(B.host_rng(0)), data, samples=7, chunk=3)
    tokens = sum(int(lengths.sum()) for _, lengths in data)
    assert result["unit"] == "bits/char" and result["tokens"] == tokens and result["sequences"] == 12
    assert result["elbo_nll"] >= result["nll_given_length"] > 0
    np.testing.assert_allclose(result["nll"], result["nll_given_length"] + result["length_nll"])
    length_bits = -sum(float(LengthPrior.fit(np.array([1, 2, 3, 4, 4]), 4).log_prob(l).sum()) for _, l in data)
    np.testing.assert_allclose(result["length_nll"], length_bits / math.log(2) / tokens)
    with pytest.raises(ValueError, match="no batch"):
        evaluate(model, model.init(B.host_rng(0)), [])


def test_training_on_the_hmm_source_approaches_its_entropy_rate():
    """400 steps on 512 sequences of a 4-state HMM whose unigram statistics are far from its true
    rate: the model must learn the dynamics (beat the unigram model by a margin), never beat the
    source itself, and the ELBO's KL part must stay in use (no posterior collapse)."""
    source = make_hmm(2, n_states=4, vocab_size=4, min_length=4, max_length=8, emissions_per_state=1,
                      concentration=0.3)
    train_set, test_set = source.sample(512, seed=1), source.sample(256, seed=2)
    train_lengths = np.array([len(s) for s in train_set])
    chars = np.concatenate(train_set)
    unigram = np.bincount(chars, minlength=4) / len(chars)
    test_chars = np.concatenate(test_set)
    length_nats = -LengthPrior.fit(train_lengths, 8).log_prob(np.array([len(s) for s in test_set])).sum()
    unigram_bits = (-np.log2(unigram[test_chars]).sum() + length_nats / math.log(2)) / len(test_chars)
    source_bits = source.nll_bits_per_char(test_set)

    model = LatentFlowModel(LatentConfig(4, 8, prior="af/af", latent_dim=3, embed_size=8, hidden_size=8, num_layers=1,
                                         flow_layers=2, flow_hidden_sizes=(16,)))
    model.fit_lengths(train_lengths)
    params = model.init(B.host_rng(0))
    test_batches = list(batches(test_set, 128, None))
    before = evaluate(model, params, test_batches, samples=20)
    params, history = train(model, params, lambda epoch: batches(train_set, 32, epoch), 400, seed=0, samples=3,
                            kl_schedule=(150, 150))
    after = evaluate(model, params, test_batches, samples=20)
    assert before["nll"] > after["nll"] + 0.5 and np.mean(history["loss"][-50:]) < np.mean(history["loss"][:50]), (before, after)
    assert after["nll"] < unigram_bits - 0.3, (after, unigram_bits, source_bits)
    assert after["nll"] > source_bits - 0.05, (after, source_bits)
    assert after["kl"] > 0.3, after


def test_training_on_chord_piano_rolls_lowers_the_nll():
    source = make_chords(0, n_chords=3, min_length=4, max_length=8)
    train_set, test_set = source.sample(256, seed=1), source.sample(128, seed=2)
    model = LatentFlowModel(LatentConfig(88, 8, prior="af/scf", output="bernoulli", latent_dim=4, embed_size=8,
                                         hidden_size=8, num_layers=1, flow_layers=2, flow_hidden_sizes=(16,)))
    model.fit_lengths(np.array([len(r) for r in train_set]))
    params = model.init(B.host_rng(0))
    test_batches = list(batches(test_set, 128, None))
    before = evaluate(model, params, test_batches, samples=10)
    params, _ = train(model, params, lambda epoch: batches(train_set, 32, epoch), 200, seed=0, samples=3,
                      kl_schedule=(50, 100))
    after = evaluate(model, params, test_batches, samples=10)
    assert after["unit"] == "nats/step"
    assert after["nll"] < 0.25 * before["nll"], (before, after)
    assert after["nll"] > source.nll_nats_per_step(test_set) - 0.05
