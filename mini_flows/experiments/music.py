"""Table 3 of Ziegler and Rush (2019): polyphonic music, the LSTM baseline against latent flow
models with the AF / AF, AF / SCF and IAF / SCF priors, every model with independent Bernoulli
outputs over the 88 keys.

Data: by default synthetic chord progressions (``mini_flows.data.chords``: a Markov chain over four
chords with note dropout) whose exact likelihood is the floor for every model; or ``--data
FILE.pickle`` in the Boulanger-Lewandowski layout (``mini_flows.data.piano.load_piano``; Nottingham,
Piano-midi.de, MuseData or JSB, as in the paper). Pickles can run code: only load trusted files.

Sizes, training and evaluation as in ``charlm`` (both from ``sequences``): every model sees the same batches for the same
Adam steps; the baseline (``latent.baseline.LSTMBaseline`` with ``output="bernoulli"``: the previous
frame projected, output weights tied to that projection as in the emission) trains on its exact
NLL and is scored exactly, the latent models train on the annealed ELBO and are scored by
importance sampling. The unit is nats
per time step with the length term -log p(T) in every row (the papers' "nats per note" is per frame).
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.data import load_piano, make_chords
from mini_flows.data.text import batches
from mini_flows.experiments.sequences import LATENT, SIZES, lstm_nll, sequence_report, train_latent, train_lstm
from mini_flows.experiments.sequences import training_note
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel
from mini_flows.latent.train import evaluate

KEYS = 88
ROWS = [  # label, prior (None: the LSTM baseline), the paper's NLL on Nottingham, Piano, MuseData, JSB (nats per note)
    ("LSTM", None, (3.43, 7.77, 7.23, 8.17)),
    ("AF / AF", "af/af", (2.39, 8.19, 6.92, 6.53)),
    ("AF / SCF", "af/scf", (2.56, 8.26, 6.95, 6.64)),
    ("IAF / SCF", "iaf/scf", (2.54, 8.25, 7.06, 6.59)),
]


def load(settings: Settings) -> tuple[list, list, int, float | None, str]:
    """(train rolls, test rolls, max length, the source's exact test NLL or None, description)."""
    if settings.data is not None:
        rolls = load_piano(settings.data)
        longest = max(len(r) for split in (rolls.train, rolls.valid, rolls.test) for r in split)
        about = f"{settings.data}: {len(rolls.train)} training and {len(rolls.test)} test pieces, up to {longest} steps"
        return rolls.train, rolls.test, longest, None, about
    source = make_chords(settings.seed, n_chords=4, dropout=0.1, min_length=8, max_length=24)
    n_train, n_test = (32, 8) if settings.quick else (1000, 100)
    train_set, test_set = source.sample(n_train, settings.seed + 1), source.sample(n_test, settings.seed + 2)
    about = f"synthetic chord progressions (4 chords, note dropout 0.1, T uniform on [8, 24]): {n_train} training " \
            f"and {n_test} test rolls"
    return train_set, test_set, 24, source.nll_nats_per_step(test_set), about


def run(settings: Settings) -> Report:
    """The baseline and the three priors, trained for the same steps on the same rolls."""
    train_set, test_set, max_length, exact, about = load(settings)
    steps = settings.pick_steps(300, 3)
    samples = (2, 5) if settings.quick else (5, 50)
    lengths = B.asarray([len(r) for r in train_set])
    settings.clock.plan(len(ROWS) * steps)
    rows, results = [], {}
    for label, prior, paper in ROWS:
        scores: dict[str, Any]
        if prior is None:
            model: Any = LSTMBaseline(BaselineConfig(KEYS, max_length, output="bernoulli", **SIZES))
            model.fit_lengths(lengths)
            params = train_lstm(label, model, train_set, steps, settings)
            scores = {"nll": lstm_nll(model, params, test_set)}  # exact, nats per step
        else:
            model = LatentFlowModel(LatentConfig(KEYS, max_length, prior=prior, output="bernoulli", **SIZES, **LATENT))
            model.fit_lengths(lengths)
            params = train_latent(label, model, train_set, steps, settings, samples[0])
            scores = {"diverged": True} if params is None else evaluate(
                model, params, list(batches(test_set, 100, None)), samples=samples[1], seed=settings.seed + 1)
        results[label] = scores
        rows.append([label, cell(scores.get("nll"), paper[0]), cell(scores.get("rec")), cell(scores.get("kl")),
                     " / ".join(f"{p:.2f}" for p in paper[1:])])
    if exact is not None:
        rows.append(["chord source (exact)", cell(exact), cell(None), cell(None), "-"])
    table = Table("Ziegler and Rush 2019, Table 3: polyphonic music, test NLL in nats per time step",
                  ["NLL", "reconst.", "KL", "paper: Piano / MuseData / JSB"], rows,
                  note="paper's Nottingham value in parentheses")
    notes = [about, training_note(steps, samples),
             "LSTM row: exact NLL; its keys are independent given the past, so a chord change it cannot foresee "
             "costs it every key, which a latent z can capture"]
    return sequence_report(settings, table, notes, results, exact, steps, "music.png", "test NLL (nats per time step)")
