"""Table 3 of Ziegler and Rush (2019): polyphonic music, the LSTM baseline against latent flow
models with the AF / AF, AF / SCF and IAF / SCF priors, every model with independent Bernoulli
outputs over the 88 keys.

Data: by default synthetic chord progressions (``mini_flows.data.chords``: a Markov chain over four
chords with note dropout) whose exact likelihood is the floor for every model; ``--data chorales``,
the Bach chorales from music21's corpus (``mini_flows.data.chorales``: four voices every quarter
note, split 60/20/20 by the fixed seed 0 whatever the run's --seed, built once and cached); or
``--data FILE.pickle`` in the Boulanger-Lewandowski layout (``mini_flows.data.piano.load_piano``,
which unpickles plain data only; Nottingham, Piano-midi.de, MuseData or JSB, as in the paper). A
file that is itself called ``chorales`` is named ``./chorales``.

The table compares with the paper's column for the data: JSB Chorales for the chorales;
Nottingham for the synthetic chords, as a reference only (they are not Nottingham); and for a
pickle, which could hold any of the four, all four columns side by side.

Sizes, training and evaluation as in ``charlm`` (both from ``sequences``), but for batches of
similar lengths (``POOL``): every model sees the same batches for the same Adam steps; the
baseline (``latent.baseline.LSTMBaseline`` with ``output="bernoulli"``: the previous frame
projected, output weights tied to that projection as in the emission) trains on its exact NLL and
is scored exactly, the latent models train on the annealed ELBO and are scored by importance
sampling. The unit is nats per time step with the length term -log p(T) in every row (the
papers' "nats per note" is per frame).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mini_flows import backend as B
from mini_flows.data import PianoRolls, load_chorales, load_piano, make_chords
from mini_flows.data.chorales import SEED, TEST, VALID, cache_path
from mini_flows.experiments.memory import require
from mini_flows.experiments.saved import MUSIC
from mini_flows.experiments.sequences import LATENT, QUICK_SAMPLES, SAMPLE_CHUNK, SIZES, batch_size, in_float64
from mini_flows.experiments.sequences import lstm_nll, memory_needs, sequence_report, test_batches, train_latent
from mini_flows.experiments.sequences import train_lstm, training_note
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel
from mini_flows.latent.train import evaluate

KEYS = 88
CHORALES = "chorales"
"""``--data chorales``: the Bach chorales from music21's corpus instead of a file."""
POOL = 4
"""Training batches of similar lengths, from pools of 4 batches (``data.text.batches``): on the
chorales (24 to 193 steps) a random batch of 32 pads to 119 steps on average, a pooled one to 87."""
STEPS, ELBO_SAMPLES = 600, 2
"""600 Adam steps on an ELBO of 2 samples (the paper: 10): for the same time, more steps with
fewer samples trained better; on the chorales AF / SCF reached 9.36 nats per step after 600
steps with 2 samples (163 s) and 10.23 after 300 steps with 5 (about 180 s)."""
TRAINING_DTYPE = "float32"
"""Every model trains in float32 (half the time of float64 here) and is scored in float64."""
DATA_SETS = ("Nottingham", "Piano-midi.de", "MuseData", "JSB Chorales")
ROWS = [  # label, prior (None: the LSTM baseline), the paper's NLL on each of DATA_SETS (nats per note)
    ("LSTM", None, (3.43, 7.77, 7.23, 8.17)),
    ("AF / AF", "af/af", (2.39, 8.19, 6.92, 6.53)),
    ("AF / SCF", "af/scf", (2.56, 8.26, 6.95, 6.64)),
    ("IAF / SCF", "iaf/scf", (2.54, 8.25, 7.06, 6.59)),
]


class Music(NamedTuple):
    """The rolls an experiment trains and tests on (lists of arrays (T, 88)) and what to say of them."""

    train: list
    test: list
    max_length: int
    exact: float | None
    """The source's exact test NLL in nats per step (the synthetic chords only)."""
    about: str
    paper: int | None
    """The index in DATA_SETS of the paper's column to compare with; None: all four."""
    paper_note: str
    """The table's note on the paper's values in parentheses ("" where all four are shown)."""


def compare_with(data_set: str, reference: str = "") -> tuple[int, str]:
    """(the index of ``data_set`` in DATA_SETS, the table's note on it)."""
    return DATA_SETS.index(data_set), f"paper's {data_set} value in parentheses{reference}"


def piece_lengths(rolls: PianoRolls) -> list[int]:
    """The length in steps of every piece of every split."""
    return [len(r) for split in (rolls.train, rolls.valid, rolls.test) for r in split]


def describe(name: str, rolls: PianoRolls) -> str:
    """A line on a data set: its pieces per split and their lengths in steps."""
    lengths = piece_lengths(rolls)
    return f"{name}: {len(rolls.train)} training, {len(rolls.valid)} validation (unused) and {len(rolls.test)} test " \
           f"pieces, {sum(lengths) / len(lengths):.1f} steps on average ({min(lengths)} to {max(lengths)})"


def load(settings: Settings) -> Music:
    """The data ``settings.data`` names (see the module docstring)."""
    if settings.data is not None:
        if settings.data == CHORALES:
            rolls, (paper, note) = load_chorales(verbose=settings.verbose), compare_with("JSB Chorales")
            name = f"Bach chorales from music21's corpus, four voices every quarter note, split " \
                   f"{1 - VALID - TEST:.0%}/{VALID:.0%}/{TEST:.0%} by seed {SEED} (cached in {cache_path()})"
        else:
            rolls, name, paper, note = load_piano(settings.data), settings.data, None, ""
        return Music(rolls.train, rolls.test, max(piece_lengths(rolls)), None, describe(name, rolls), paper, note)
    source = make_chords(settings.seed, n_chords=4, dropout=0.1, min_length=8, max_length=24)
    n_train, n_test = (32, 8) if settings.quick else (1000, 100)
    train_set, test_set = source.sample(n_train, settings.seed + 1), source.sample(n_test, settings.seed + 2)
    about = f"synthetic chord progressions (4 chords, note dropout 0.1, T uniform on [8, 24]): {n_train} training " \
            f"and {n_test} test rolls"
    return Music(train_set, test_set, 24, source.nll_nats_per_step(test_set), about,
                 *compare_with("Nottingham", ", for reference only: these are synthetic chords"))


def run(settings: Settings) -> Report:
    """The baseline and the three priors, trained for the same steps on the same rolls."""
    data = load(settings)
    train_set, test_set, max_length, exact = data.train, data.test, data.max_length, data.exact
    steps = settings.pick_steps(STEPS, 3)
    samples = QUICK_SAMPLES if settings.quick else (ELBO_SAMPLES, 50)
    test_batch = batch_size(settings, test=True)
    check_memory(data, batch_size(settings), test_batch, samples)
    lengths = B.asarray([len(r) for r in train_set])
    scored = test_batches(test_set, test_batch)
    settings.clock.plan(len(ROWS) * steps)
    rows, results = [], {}
    for label, prior, paper in ROWS:
        scores: dict[str, Any]
        if prior is None:
            model: Any = LSTMBaseline(baseline_config(max_length))
            model.fit_lengths(lengths)
            params = train_lstm(label, model, train_set, steps, settings, POOL, TRAINING_DTYPE)
            scores = {"nll": lstm_nll(model, in_float64(params), test_set, test_batch)}  # exact, nats per step
        else:
            model = LatentFlowModel(latent_config(max_length, prior))
            model.fit_lengths(lengths)
            params = train_latent(label, model, train_set, steps, settings, samples[0], POOL, TRAINING_DTYPE)
            scores = {"diverged": True} if params is None else evaluate(
                model, in_float64(params), scored, samples=samples[1], seed=settings.seed + 1, chunk=SAMPLE_CHUNK)
        if params is not None:
            settings.keep_model(label, model, params, MUSIC)
        results[label] = scores
        rows.append([label, cell(scores.get("nll"), None if data.paper is None else paper[data.paper]),
                     cell(scores.get("rec")), cell(scores.get("kl"))]
                    + ([" / ".join(f"{p:.2f}" for p in paper)] if data.paper is None else []))
    if exact is not None:
        rows.append(["chord source (exact)", cell(exact), cell(None), cell(None)])
    table = Table("Ziegler and Rush 2019, Table 3: polyphonic music, test NLL in nats per time step",
                  ["NLL", "reconst.", "KL"] + (["paper: " + " / ".join(DATA_SETS)] if data.paper is None else []),
                  rows, note=data.paper_note)
    notes = [data.about, training_note(steps, batch_size(settings), samples),
             "LSTM row: exact NLL; its keys are independent given the past, so a chord change it cannot foresee "
             "costs it every key, which a latent z can capture"]
    return sequence_report(settings, table, notes, results, exact, steps, "music.png", "test NLL (nats per time step)")


def baseline_config(max_length: int) -> BaselineConfig:
    """The LSTM baseline's configuration for pieces of up to ``max_length`` steps."""
    return BaselineConfig(KEYS, max_length, output="bernoulli", **SIZES)


def latent_config(max_length: int, prior: str) -> LatentConfig:
    """A latent flow model's configuration for pieces of up to ``max_length`` steps, with ``prior``."""
    return LatentConfig(KEYS, max_length, prior=prior, output="bernoulli", **SIZES, **LATENT)


def check_memory(data: Music, batch: int, test_batch: int, samples: tuple[int, int]) -> None:
    """Refuse at once, in one line saying what to change, pieces too long for the models to fit in
    memory (``memory.require``): every row's training (in float32, on batches of ``batch``
    pieces) and scoring (in float64, ``test_batch``) at the longest piece."""
    longest, itemsize = data.max_length, B.float_dtype(TRAINING_DTYPE).itemsize
    train, test = min(batch, len(data.train)) * longest, min(test_batch, len(data.test)) * longest
    needs = memory_needs("the LSTM", baseline_config(longest), train, test, samples, itemsize)
    for label, prior, _ in ROWS:
        if prior is not None:
            needs += memory_needs(label, latent_config(longest, prior), train, test, samples, itemsize)
    require(needs, f"use pieces of fewer steps (the longest, of {longest} steps, sets every sequence's length "
                   "encoding): cut long pieces into parts")
