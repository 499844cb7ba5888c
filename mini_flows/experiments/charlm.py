"""Tables 1 and 2 of Ziegler and Rush (2019): character-level language models, the LSTM baseline
against latent flow models with the AF / AF, AF / SCF and IAF / SCF priors, the AF-only
("unigram") prior, and the ablations of AF / AF (- NLSq, - AF hidden, - both).

Data: by default a synthetic hidden-Markov character source (``mini_flows.data.hmm``) whose exact
likelihood (forward algorithm) is the floor every model is compared with; or ``--data FILE``, a
text file with one sentence per line (``mini_flows.data.text.load_text``: split 80/10/10 by the
seed, sentences over 288 characters dropped, the Penn Treebank of the paper being one such file).

Every model has the same toy sizes (embedding 16, one LSTM layer of 32, latent 4, flow MADE/MLP
of 32) and sees the same batches for the same number of Adam steps (clip 0.25, as supplement D;
``sequences`` trains them).
The latent models train on the ELBO with S samples and KL annealing (weight ~0 for the first tenth
of the steps, then linear to 1 over the next three tenths) and are scored by importance sampling
with q as proposal (``latent.train.evaluate``). The table reports bits per character on the test
set: the NLL (with the length term -log p(T)), and the ELBO's reconstruction and KL parts.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.data import load_text, make_hmm
from mini_flows.data.text import batches
from mini_flows.experiments.sequences import LATENT, SIZES, lstm_nll, sequence_report, train_latent, train_lstm
from mini_flows.experiments.sequences import training_note
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel
from mini_flows.latent.train import evaluate

ROWS = [  # label, prior (None: the LSTM baseline), transform, the paper's (NLL, reconstruction, KL) in bpc
    ("LSTM", None, None, (1.38, None, None)),
    ("AF-only", "none/af", "nlsq", (2.90, 0.15, 2.77)),
    ("AF / AF", "af/af", "nlsq", (1.42, 0.10, 1.37)),
    ("AF / SCF", "af/scf", "nlsq", (1.46, 0.10, 1.43)),
    ("IAF / SCF", "iaf/scf", "nlsq", (1.63, 0.21, 1.55)),
    ("AF / AF - NLSq", "af/af", "affine", (1.50, 0.11, 1.51)),
    ("AF / AF - AF hidden", "af/none", "nlsq", (1.57, 0.14, 1.57)),
    ("AF / AF - AF hidden, NLSq", "af/none", "affine", (1.56, 0.29, 1.56)),
]


def load(settings: Settings) -> tuple[list, list, int, int, float | None, str]:
    """(train, test, vocabulary size, max length, the source's exact test NLL or None, description)."""
    if settings.data is not None:
        corpus = load_text(settings.data, seed=settings.seed, drop_long=True)
        longest = max(len(s) for split in (corpus.train, corpus.valid, corpus.test) for s in split)
        about = f"{settings.data}: {len(corpus.train)} training and {len(corpus.test)} test sentences, " \
                f"{corpus.vocab.size} token ids"
        return corpus.train, corpus.test, corpus.vocab.size, longest, None, about
    source = make_hmm(settings.seed, n_states=4, vocab_size=8, min_length=4, max_length=12, emissions_per_state=3,
                      concentration=0.3)
    n_train, n_test = (64, 16) if settings.quick else (3000, 300)
    train_set, test_set = source.sample(n_train, settings.seed + 1), source.sample(n_test, settings.seed + 2)
    about = f"synthetic HMM source (4 states, 8 characters, T uniform on [4, 12]): {n_train} training and " \
            f"{n_test} test sequences, e.g. {source.decode(test_set[0])!r}"
    return train_set, test_set, 8, 12, source.nll_bits_per_char(test_set), about


def run(settings: Settings) -> Report:
    """Every row of Tables 1 and 2, trained for the same steps on the same data."""
    train_set, test_set, vocab, max_length, exact, about = load(settings)
    steps = settings.pick_steps(300, 3)
    samples = (2, 5) if settings.quick else (5, 50)  # ELBO samples in training, importance samples at test
    lengths = B.asarray([len(s) for s in train_set])
    settings.clock.plan(len(ROWS) * steps)
    rows, results = [], {}
    for label, prior, transform, paper in ROWS:
        if prior is None:
            model: Any = LSTMBaseline(BaselineConfig(vocab, max_length, **SIZES))
            model.fit_lengths(lengths)
            params = train_lstm(label, model, train_set, steps, settings)
            scores = {"nll": lstm_nll(model, params, test_set)}
        else:
            model = LatentFlowModel(LatentConfig(vocab, max_length, prior=prior, transform=transform, **SIZES,
                                                 **LATENT))
            model.fit_lengths(lengths)
            params = train_latent(label, model, train_set, steps, settings, samples[0])
            scores = {"diverged": True} if params is None else evaluate(
                model, params, list(batches(test_set, 100, None)), samples=samples[1], seed=settings.seed + 1)
        results[label] = scores
        rows.append([label, *(cell(scores.get(key), p) for key, p in zip(("nll", "rec", "kl"), paper))])
    if exact is not None:
        rows.append(["HMM source (exact)", cell(exact), cell(None), cell(None)])
    table = Table("Ziegler and Rush 2019, Tables 1 and 2: character-level language models, test bits per character",
                  ["NLL", "reconst.", "KL"], rows)
    notes = [about, training_note(steps, samples) + ", the paper's are 500/500/50",
             "the paper's numbers are for the Penn Treebank (--data FILE runs on a text file)"]
    return sequence_report(settings, table, notes, results, exact, steps, "charlm.png", "test bits per character")
