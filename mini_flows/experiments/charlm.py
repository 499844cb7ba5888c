"""Tables 1 and 2 of Ziegler and Rush (2019): character-level language models, the LSTM baseline
against latent flow models with the AF / AF, AF / SCF and IAF / SCF priors, the AF-only
("unigram") prior, and the ablations of AF / AF (- NLSq, - AF hidden, - both); with the discrete
bipartite flow of Tran et al. (2019), Table 3 (``textflows``: 8 location-scale flows on a
factorized base, each sentence padded with an end token to a row of the longest length, its NLL
-log q(padded row) an upper bound on the sentence's, ``data.fixed_length``), and the generation
time of the LSTM and of the bipartite flow for sequences of the longest length, one at a time and
64 at once, measured in the same run. The notes show three generated strings per model.

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

from typing import Any, NamedTuple

from mini_flows import backend as B
from mini_flows.data import PAD_ID, load_text
from mini_flows.data.fixed_length import pad_rows, strip_rows
from mini_flows.experiments.memory import require
from mini_flows.experiments.saved import text_decoder
from mini_flows.experiments.sequences import LATENT, QUICK_SAMPLES, SAMPLE_CHUNK, SIZES, batch_size, lstm_nll
from mini_flows.experiments.sequences import memory_needs, sequence_report, test_batches, train_latent, train_lstm
from mini_flows.experiments.sequences import training_note
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.experiments.textflows import base_first, bipartite_lm, bipartite_needs, bits_per_char
from mini_flows.experiments.textflows import generation_seconds, hmm_source, sample_rows, summary, train_bipartite
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel
from mini_flows.latent.train import evaluate

ROWS = [  # label, prior (None: the LSTM baseline; "bipartite": the discrete flow), transform, the paper's (NLL,
    # reconstruction, KL) in bpc
    ("LSTM", None, None, (1.38, None, None)),
    ("bipartite flow", "bipartite", None, (1.38, None, None)),
    ("AF-only", "none/af", "nlsq", (2.90, 0.15, 2.77)),
    ("AF / AF", "af/af", "nlsq", (1.42, 0.10, 1.37)),
    ("AF / SCF", "af/scf", "nlsq", (1.46, 0.10, 1.43)),
    ("IAF / SCF", "iaf/scf", "nlsq", (1.63, 0.21, 1.55)),
    ("AF / AF - NLSq", "af/af", "affine", (1.50, 0.11, 1.51)),
    ("AF / AF - AF hidden", "af/none", "nlsq", (1.57, 0.14, 1.57)),
    ("AF / AF - AF hidden, NLSq", "af/none", "affine", (1.56, 0.29, 1.56)),
]
BIPARTITE = dict(num_flows=8, scale=True, hidden=64, layers=1)  # Tran et al. use 8 flows on the Penn Treebank
BASE = "factorized base"  # the bipartite flow's base trained alone, its row
QUICK_BIPARTITE = dict(num_flows=2, scale=True, hidden=16, layers=1)
"""--quick: its parameters grow as D K hidden per flow, so on a file of lines up to D = 177
characters and K = 80 token ids the full model's training took 1.5 GB, this one's 0.1 GB."""
GENERATION_BATCHES = (1, 64)


class Data(NamedTuple):
    """train, validation and test sentences (lists of (T,) ints), K, the longest T, the end token
    that pads a sentence to a row of the bipartite flow (``data.fixed_length``; K for the synthetic source,
    whose K + 1 tokens the flow then models, ``PAD_ID`` for text), how to print a sentence, the
    source's exact test NLL or None, and a description."""

    train: list
    valid: list
    test: list
    vocab_size: int
    max_length: int
    end: int
    decode: Any
    exact: float | None
    about: str


def load(settings: Settings) -> Data:
    """The synthetic HMM sentences, or ``--data``'s."""
    if settings.data is not None:
        corpus = load_text(settings.data, seed=settings.seed, drop_long=True)
        longest = max(len(s) for split in (corpus.train, corpus.valid, corpus.test) for s in split)
        about = f"{settings.data}: {len(corpus.train)} training and {len(corpus.test)} test sentences, " \
                f"{corpus.vocab.size} token ids"
        return Data(corpus.train, corpus.valid, corpus.test, corpus.vocab.size, longest, PAD_ID, corpus.vocab.decode,
                    None, about)
    source = hmm_source(settings.seed)
    n_train, n_test = (64, 16) if settings.quick else (3000, 300)
    train_set, test_set = source.sample(n_train, settings.seed + 1), source.sample(n_test, settings.seed + 2)
    valid_set = source.sample(n_test, settings.seed + 4)
    about = f"synthetic HMM source (4 states, 8 characters, T uniform on [4, 12]): {n_train} training and " \
            f"{n_test} test sequences"
    return Data(train_set, valid_set, test_set, 8, 12, 8, source.decode, source.nll_bits_per_char(test_set), about)


def run(settings: Settings) -> Report:
    """Every row of Tables 1 and 2 and the bipartite flow of Tran et al.'s Table 3, trained for the
    same steps on the same data; the LSTM's and the bipartite flow's generation times."""
    data = load(settings)
    steps = settings.pick_steps(300, 3)
    samples = QUICK_SAMPLES if settings.quick else (5, 50)  # ELBO samples in training, importance samples at test
    bipartite = QUICK_BIPARTITE if settings.quick else BIPARTITE
    check_memory(data, batch_size(settings), batch_size(settings, test=True), bipartite, samples)
    lengths = B.asarray([len(s) for s in data.train])
    settings.clock.plan((len(ROWS) + 1) * steps)
    rows, results, generated, timed = [], {}, {}, {}
    for label, prior, transform, paper in ROWS:
        if prior == "bipartite":
            train_rows, valid_rows, test_rows = (pad_rows(split, data.max_length, data.end)
                                                 for split in (data.train, data.valid, data.test))
            characters = sum(len(s) for s in data.test)
            base = bipartite_lm(flow_vocab_size(data), data.max_length, **{**bipartite, "num_flows": 0},
                                spread=settings.spread)
            base_params, _ = train_bipartite(BASE, base, train_rows, valid_rows, steps, settings)
            settings.keep_model(BASE, base, base_params, text_decoder(data.decode, data.vocab_size, data.end))
            results[BASE] = {"nll": bits_per_char(base, base_params, test_rows, characters)}
            rows.append([BASE, cell(results[BASE]["nll"]), *[cell(None)] * 4])
            model: Any = bipartite_lm(flow_vocab_size(data), data.max_length, **bipartite, spread=settings.spread)
            params, history = base_first(label, model, base_params["base"], train_rows, valid_rows, steps, settings)
            scores = {"nll": bits_per_char(model, params, test_rows, characters), **summary(history)}
            strings = strip_rows(sample_rows(model, params, 3, settings.seed + 3), data.end)
            timed[label] = [generation_seconds(lambda s: model.sample(params, n, s), 3) for n in GENERATION_BATCHES]
        elif prior is None:
            model = LSTMBaseline(baseline_config(data))
            model.fit_lengths(lengths)
            params = train_lstm(label, model, data.train, steps, settings)
            scores = {"nll": lstm_nll(model, params, data.test, batch_size(settings, test=True))}
            strings = sampled(model, params, settings.seed + 3)
            timed[label] = [generation_seconds(
                lambda s: model.sample(params, n, s, B.asarray([data.max_length] * n)), 3) for n in GENERATION_BATCHES]
        else:
            model = LatentFlowModel(latent_config(data, prior, transform))
            model.fit_lengths(lengths)
            params = train_latent(label, model, data.train, steps, settings, samples[0])
            scores = {"diverged": True} if params is None else evaluate(
                model, params, test_batches(data.test, batch_size(settings, test=True)), samples=samples[1],
                seed=settings.seed + 1, chunk=SAMPLE_CHUNK)
            strings = [] if params is None else sampled(model, params, settings.seed + 3)
        if params is not None:
            settings.keep_model(label, model, params, text_decoder(data.decode, data.vocab_size,
                                                                   data.end if prior == "bipartite" else None))
        results[label] = scores
        generated[label] = [data.decode(s) for s in strings]
        milliseconds = [cell(1e3 * t, digits=1) for t in timed[label]] if label in timed else [cell(None)] * 2
        rows.append([label, *(cell(scores.get(key), p) for key, p in zip(("nll", "rec", "kl"), paper)), *milliseconds])
    if data.exact is not None:
        rows.append(["HMM source (exact)", cell(data.exact), *[cell(None)] * 4])
    lstm, flow = (timed[label] for label in ("LSTM", "bipartite flow"))
    table = Table("Ziegler and Rush 2019, Tables 1 and 2, and Tran et al. 2019, Table 3: character-level language "
                  "models, test bits per character, generation time",
                  ["NLL", "reconst.", "KL", "gen ms (1)", "gen ms (64)"], rows)
    notes = [data.about, training_note(steps, batch_size(settings), samples) + ", the paper's are 500/500/50",
             f"bipartite flow: {bipartite['num_flows']} location-scale flows (MLP of {bipartite['hidden']} units), a "
             f"factorized base over rows of {data.max_length} tokens, sentences padded with an end token; its NLL is "
             "-log q(padded row), an upper bound on the sentence's (data.fixed_length); base first: the factorized "
             f"base alone ('{BASE}', {steps} steps), then the flow model from it with its flows at the identity, "
             f"{steps} more steps, each kept at its best validation NLL (so the flows end no worse than '{BASE}' on "
             "the validation sentences)",
             f"gen ms (n): milliseconds to generate n sequences of T = {data.max_length} (mean of 3 after a warm-up); "
             "LSTM / bipartite flow: " + ", ".join(f"{a / b:.2f}x at batch {n}" for a, b, n in
                                                   zip(lstm, flow, GENERATION_BATCHES)),
             "the paper's numbers are for the Penn Treebank (--data FILE runs on a text file); the bipartite flow's "
             "1.38 is Tran et al.'s",
             *(f"samples, {label}: " + " | ".join(map(repr, strings)) for label, strings in generated.items())]
    report = sequence_report(settings, table, notes, results, data.exact, steps, "charlm.png", "test bits per character")
    report.results["generation_seconds"] = {"T": data.max_length, "batches": list(GENERATION_BATCHES), **timed}
    return report


def flow_vocab_size(data: Data) -> int:
    """The tokens of the bipartite flow's rows: the data's, and the end token where it is new."""
    return data.vocab_size + (data.end == data.vocab_size)


def baseline_config(data: Data) -> BaselineConfig:
    """The LSTM baseline's configuration for the data."""
    return BaselineConfig(data.vocab_size, data.max_length, **SIZES)


def latent_config(data: Data, prior: str, transform: str) -> LatentConfig:
    """A latent flow model's configuration for the data, with ``prior`` and ``transform``."""
    return LatentConfig(data.vocab_size, data.max_length, prior=prior, transform=transform, **SIZES, **LATENT)


def check_memory(data: Data, batch: int, test_batch: int, bipartite: dict[str, Any], samples: tuple[int, int]) -> None:
    """Refuse at once, in one line saying what to change, data whose models would not fit in
    memory (``memory.require``): every row's training (on batches of ``batch`` sequences) and
    scoring (``test_batch``) at the data's longest sequence, and the bipartite flow's generation
    of 64 rows."""
    longest = data.max_length
    train, test = min(batch, len(data.train)) * longest, min(test_batch, len(data.test)) * longest
    needs = bipartite_needs("the bipartite flow", flow_vocab_size(data), longest, bipartite, len(data.train),
                            len(data.test), max(GENERATION_BATCHES))
    needs += memory_needs("the LSTM", baseline_config(data), train, test, samples)
    for label, prior, transform, _ in ROWS:
        if prior not in (None, "bipartite"):
            needs += memory_needs(label, latent_config(data, prior, transform), train, test, samples)
    require(needs, f"use a --data file with fewer distinct characters ({data.vocab_size} token ids) or shorter lines "
                   f"(the longest, of {longest} characters, sets every sequence's length)")


def sampled(model: Any, params: Any, seed: int) -> list:
    """Three sequences from a sequence model's ``sample`` (lengths from its p(T)), cut to length."""
    x, lengths = model.sample(params, 3, seed)
    x, lengths = B.to_numpy(x), B.to_numpy(lengths)
    return [row[:t] for row, t in zip(x, lengths)]
