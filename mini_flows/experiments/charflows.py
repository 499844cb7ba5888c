"""Figure 3 of Tran et al. (2019) at toy scale: bits per character of a discrete bipartite flow
language model (``textflows``) against the number of flows (1, 2, 4, 8), location-only against
location-scale flows, and the width (hidden units H) and depth (hidden layers per flow) of each
flow's network.

Data: by default the synthetic HMM character source of ``charlm`` (exact likelihood, the floor),
its sentences padded to D = 12 with an end token (9 tokens; ``data.fixed_length``), scored per
character of the sentences, as the paper's Penn Treebank set-up; or ``--data FILE``, any text file
cut into chunks of ``CHUNK`` characters as the paper's text8 (``data.fixed_length.load_chunks``:
lines joined by newlines, the first 80% of the characters train, the last 10% test). Every model
sees the same batches for the same steps; the table reports test bits per character, the figure
plots them against the number of flows, and the notes show generated strings.

Training (``textflows``): base first. The factorized base trains alone (the "base only" row);
every flow model then starts from that trained base with its flows at the identity and trains as
many steps again; "base only, 2 stages" is the base trained alone for both stages, the same model
with zero flows trained the same way. Every model keeps its parameters of the best validation
NLL (the 10% of the text after the training part, or 300 more sentences of the source), so no
flow model ends worse than the base on the validation rows. One row has the paper's Penn Treebank
flow network (an embedding and a bidirectional LSTM per flow) instead of the MLP; "step ms" is
the median time of a training step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mini_flows.data.fixed_length import is_padded, load_chunks, pad_rows, strip_rows
from mini_flows.experiments.figures import save_figure
from mini_flows.experiments.memory import require
from mini_flows.experiments.saved import text_decoder
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.experiments.textflows import base_first, bipartite_lm, bipartite_needs, bits_per_char, hmm_source
from mini_flows.experiments.textflows import sample_rows, summary, train_bipartite

CHUNK = 32  # characters per row for --data (text8's are 256)
SAMPLES = 200  # rows each model generates, for the notes and the share not padded
HIDDEN, LAYERS = 64, 1  # the default flow network; the sweep varies each at 4 flows, location-scale


class Spec(NamedTuple):
    """One model: flows, location-scale (True) or location-only, hidden units, hidden layers, the
    flows' network ("mlp" or "lstm", ``textflows.bipartite_lm``)."""

    flows: int
    scale: bool
    hidden: int = HIDDEN
    layers: int = LAYERS
    network: str = "mlp"

    @property
    def label(self) -> str:
        kind = "loc-scale" if self.scale else "location"
        net = ", LSTM" if self.network == "lstm" else ""
        return f"{self.flows} flows, {kind}{net}, H={self.hidden}, L={self.layers}" if self.flows else "base only"

    @property
    def sweep(self) -> bool:
        """One of the models of the number-of-flows sweep (default width, depth and network)."""
        return bool(self.flows) and (self.hidden, self.layers, self.network) == (HIDDEN, LAYERS, "mlp")


def specs(quick: bool) -> list[Spec]:
    """The base alone, 1, 2, 4, 8 flows of each kind, then H/4, 4H, two layers and the LSTM network
    at 4 location-scale flows (quick: 1 and 2 flows, one narrow model and a narrow LSTM one)."""
    counts = (1, 2) if quick else (1, 2, 4, 8)
    sweep = [Spec(n, s) for s in (False, True) for n in counts]
    at = counts[-1] if quick else 4
    extra = [Spec(at, True, HIDDEN // 4), Spec(at, True, HIDDEN // 4, network="lstm")] if quick else \
        [Spec(at, True, HIDDEN // 4), Spec(at, True, 4 * HIDDEN), Spec(at, True, HIDDEN, 2),
         Spec(at, True, network="lstm")]
    return [Spec(0, False), *sweep, *extra]


class Rows(NamedTuple):
    """The data as the models see it: train, validation and test rows (N, D), K, the test's
    characters, how to print a row, the end token (None for chunks), the source's exact test NLL
    (or None) and a description."""

    train: Any
    valid: Any
    test: Any
    vocab_size: int
    characters: int
    decode: Any
    end: int | None
    exact: float | None
    about: str


def load(settings: Settings) -> Rows:
    """The padded synthetic sentences, or ``--data`` cut into chunks."""
    if settings.data is not None:
        length = 16 if settings.quick else CHUNK
        chunks = load_chunks(settings.data, length)
        about = (f"{settings.data} cut into chunks of {length} characters: {len(chunks.train)} training, "
                 f"{len(chunks.valid)} validation and {len(chunks.test)} test chunks, {chunks.vocab.size} token ids")
        return Rows(chunks.train, chunks.valid, chunks.test, chunks.vocab.size, chunks.test.size, chunks.vocab.decode,
                    None, None, about)
    source = hmm_source(settings.seed)
    n_train, n_test = (64, 16) if settings.quick else (3000, 300)
    train, test = source.sample(n_train, settings.seed + 1), source.sample(n_test, settings.seed + 2)
    valid = source.sample(n_test, settings.seed + 4)
    end, length = source.vocab_size, source.max_length
    about = (f"synthetic HMM source (4 states, 8 characters, T uniform on [4, 12]) padded to D = {length} with an end "
             f"token ({end + 1} tokens): {n_train} training, {n_test} validation and {n_test} test sentences")
    return Rows(pad_rows(train, length, end), pad_rows(valid, length, end), pad_rows(test, length, end), end + 1,
                sum(len(s) for s in test), lambda row: source.decode(strip_rows(row[None], end)[0]), end,
                source.nll_bits_per_char(test), about)


def run(settings: Settings) -> Report:
    """Train the base, then every flow model of ``specs`` from it, for the same steps each, and
    score every model on the test rows."""
    data = load(settings)
    steps = settings.pick_steps(1000, 3)
    models = specs(settings.quick)
    check_memory(data, models)
    settings.clock.plan(steps * (len(models) + 1))
    base_spec, twice = models[0], models[0].label + ", 2 stages"
    base = bipartite_lm(data.vocab_size, data.train.shape[1], 0, False, HIDDEN, LAYERS, settings.spread)
    base_params, history = train_bipartite(base_spec.label, base, data.train, data.valid, steps, settings)
    trained = {base_spec.label: (base_spec, base, base_params, history),
               twice: (base_spec, base, *base_first(twice, base, base_params["base"], data.train, data.valid, steps,
                                                      settings))}
    for spec in models[1:]:
        model = bipartite_lm(data.vocab_size, data.train.shape[1], spec.flows, spec.scale, spec.hidden, spec.layers,
                             settings.spread, spec.network)
        trained[spec.label] = (spec, model, *base_first(spec.label, model, base_params["base"], data.train,
                                                        data.valid, steps, settings))
    results: dict[str, Any] = {}
    samples: dict[str, list[str]] = {}
    for label, (spec, model, params, history) in trained.items():
        settings.keep_model(label, model, params, text_decoder(data.decode, data.vocab_size, data.end))
        rows = sample_rows(model, params, SAMPLES, settings.seed + 3)
        results[label] = {**spec._asdict(), "bpc": bits_per_char(model, params, data.test, data.characters),
                          **summary(history)}
        if data.end is not None:
            results[label]["samples_not_padded"] = float(1 - is_padded(rows, data.end).mean())
        samples[label] = [data.decode(row) for row in rows[:3]]
    table = Table("Tran et al. 2019, Figure 3: bipartite flow language models, test bits per character",
                  ["flows", "sigma", "net", "H", "L", "bpc", "step ms"]
                  + (["not padded"] if data.end is not None else []),
                  [[label, r["flows"], *(("yes" if r["scale"] else "no", r["network"], r["hidden"], r["layers"])
                                         if r["flows"] else ("-", "-", "-", "-")), cell(r["bpc"]),
                    cell(1e3 * r["step_seconds"], digits=1),
                    *([cell(r["samples_not_padded"], digits=3)] if data.end is not None else [])]
                   for label, r in results.items()]
                  + ([["HMM source (exact)", "", "", "", "", "", cell(data.exact), "", ""]] if data.exact is not None
                     else []),
                  note="text8 in the paper, at 512 units and 2-3 Transformer layers per flow")
    notes = [data.about, f"base first: the base alone for {steps} Adam steps of batch 32 ('base only'), then each flow "
             f"model from it, its flows at the identity, {steps} more steps on the batches that follow; 'base only, 2 "
             f"stages': the base alone for both stages; every model keeps its parameters of the best validation NLL "
             f"({max(1, steps // 20)}-step checks), so no flow model ends worse than 'base only' on the validation "
             "rows; flows: MLP networks (H hidden units, L hidden layers) on the masked row, or (net lstm) an "
             "embedding and a bidirectional LSTM of H units; step ms: median milliseconds per training step",
             *trends(models, results), *against_base(results, twice),
             *(f"samples, {label}: " + " | ".join(repr(s) for s in strings) for label, strings in samples.items()
               if label in (models[0].label, best(results)))]
    if data.end is not None:
        notes.append(f"not padded: share of {SAMPLES} samples with a character after the end token (mass the bound "
                     "wastes)")
    report = Report(table, notes, results={"models": results, "source_nll": data.exact, "steps": steps})
    save_figure(settings, "charflows.png", draw(models, results, data.exact), report)
    return report


def check_memory(data: Rows, models: list[Spec]) -> None:
    """Refuse at once, in one line saying what to change, data whose models would not fit in
    memory (``memory.require``): each model's training, scoring and generation (the LSTM network's
    counted as the MLP of its width and depth)."""
    needs = [need for spec in models for need in bipartite_needs(
        f"the model '{spec.label}'", data.vocab_size, data.train.shape[1],
        dict(num_flows=spec.flows, scale=spec.scale, hidden=spec.hidden, layers=spec.layers),
        len(data.train), len(data.test), SAMPLES)]
    require(needs, f"use a --data file with fewer distinct characters ({data.vocab_size} token ids)")


def against_base(results: dict[str, Any], twice: str) -> list[str]:
    """The flow models above either zero-flow row ('base only', their start, and ``twice``, the
    base trained alone for both stages), checked."""
    lines = []
    for label in ("base only", twice):
        above = [name for name, r in results.items() if r["flows"] and r["bpc"] > results[label]["bpc"]]
        lines.append(f"flow models above '{label}' ({results[label]['bpc']:.3f}): "
                     + (", ".join(above) if above else "none"))
    return lines


def best(results: dict[str, Any]) -> str:
    """The label of the model with the lowest test bpc."""
    return min(results, key=lambda label: results[label]["bpc"])


def trends(models: list[Spec], results: dict[str, Any]) -> list[str]:
    """What the figure should show, checked: bpc non-increasing in the number of flows for each
    kind, and location-scale <= location-only at each number of flows."""
    lines = []
    for scale in (False, True):
        bpc = [results[s.label]["bpc"] for s in models if s.scale == scale and s.sweep]
        steady = all(b <= a for a, b in zip(bpc, bpc[1:]))
        lines.append(f"{'location-scale' if scale else 'location-only'}: bpc {' -> '.join(f'{b:.3f}' for b in bpc)} "
                     f"over the flows, {'non-increasing' if steady else 'NOT non-increasing'}")
    pairs = [(s.flows, results[s.label]["bpc"], results[s._replace(scale=True).label]["bpc"]) for s in models
             if s.flows and not s.scale]
    wins = sum(b <= a for _, a, b in pairs)
    lines.append(f"location-scale <= location-only at {wins} of {len(pairs)} flow counts (" +
                 ", ".join(f"{n}: {b - a:+.3f}" for n, a, b in pairs) + ")")
    return lines


def draw(models: list[Spec], results: dict[str, Any], exact: float | None) -> Any:
    """Test bpc against the number of flows, a line per kind, the H and L variants as markers,
    the base alone and the source's exact NLL as horizontal lines; as plt -> None."""
    def plot(plt: Any) -> None:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for scale, name in ((False, "location only"), (True, "location-scale")):
            sweep = [s for s in models if s.sweep and s.scale == scale]
            ax.plot([s.flows for s in sweep], [results[s.label]["bpc"] for s in sweep], marker="o",
                    label=f"{name}, H={HIDDEN}, L={LAYERS}")
        for s in models:
            if s.flows and not s.sweep:
                ax.scatter([s.flows], [results[s.label]["bpc"]], marker="x", zorder=3,
                           label=f"location-scale, {s.network.upper()} H={s.hidden}, L={s.layers}")
        ax.axhline(results[models[0].label]["bpc"], color="gray", linestyle=":", label="base only (0 flows)")
        if exact is not None:
            ax.axhline(exact, color="black", linestyle="--", label="source (exact)")
        ax.set_xscale("log", base=2)
        counts = sorted({s.flows for s in models if s.flows})
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.set(xlabel="number of flows", ylabel="test bits per character", title="Bipartite flow LMs")
        ax.legend(fontsize=7)
        fig.tight_layout()
    return plot
