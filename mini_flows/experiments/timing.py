"""Generation time against sequence length: Figure 7 of Ziegler and Rush (2019) and the
generation column of Tran et al. (2019), Table 3.

Three untrained generators (speed does not depend on the weights) draw one sequence of T
characters (batch 1, a 51-character vocabulary as Penn Treebank's) at each length:

    AR LSTM                 ``latent.baseline.LSTMBaseline.sample``: T LSTM steps, each waiting
                            for the character drawn before it
    IAF / SCF               ``latent.model.LatentFlowModel.sample``: eps drawn at once, the prior's
                            time LSTM over known inputs, SCF layers and the emission in parallel
    discrete bipartite flow ``discrete.DiscreteFlowModel.sample``: a factorized base and 8
                            bipartite flows (bidirectional Transformers), one pass per flow

Each length gets one untimed warm-up and ``--steps`` timed generations (default 10); the table
reports mean milliseconds per sequence (with the half-width of a 95% interval in the results).
The papers time on GPUs (a V100, a P100), where the parallel models' single passes pay off; on a
CPU the LSTM recurrences inside IAF / SCF (time LSTM, emission BiLSTM) run step by step as well,
so there it is no faster than the baseline, while the bipartite flow, with no recurrence, is.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable

from mini_flows import backend as B
from mini_flows.discrete import build_model
from mini_flows.experiments.figures import save_figure
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel

VOCAB = 51
LENGTHS = [8, 16, 32, 64, 128, 288]
GENERATORS = ("AR LSTM", "IAF / SCF", "bipartite flow")



def mean_ci(times: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% confidence interval)."""
    spread = statistics.stdev(times) if len(times) > 1 else 0.0
    return statistics.fmean(times), 1.96 * spread / math.sqrt(len(times))


def generators(lengths: list[int], sizes: dict[str, int], seed: int) -> dict[str, Callable[[int, int], Any]]:
    """name -> (T, seed) -> one generated sequence of length T."""
    embed, hidden, layers, latent = sizes["embed"], sizes["hidden"], sizes["layers"], sizes["latent"]
    longest = max(lengths)
    lstm = LSTMBaseline(BaselineConfig(VOCAB, longest, embed_size=embed, hidden_size=hidden, num_layers=layers))
    flow = LatentFlowModel(LatentConfig(VOCAB, longest, prior="iaf/scf", latent_dim=latent, embed_size=embed,
                                        hidden_size=hidden, num_layers=layers, flow_hidden_sizes=(hidden,)))
    lstm_params, flow_params = lstm.init(B.host_rng(seed)), flow.init(B.host_rng(seed + 1))
    bipartite = {T: build_model("bipartite", VOCAB, T, num_flows=8, hidden=sizes["bipartite"], network="transformer")
                 for T in lengths}
    bipartite_params = {T: model.init(B.host_rng(seed)) for T, model in bipartite.items()}
    return {
        "AR LSTM": lambda T, s: lstm.sample(lstm_params, 1, s, B.asarray([T])),
        "IAF / SCF": lambda T, s: flow.sample(flow_params, 1, s, B.asarray([T])),
        "bipartite flow": lambda T, s: bipartite[T].sample(bipartite_params[T], 1, s),
    }


def measure(lengths: list[int], sizes: dict[str, int], repeats: int, seed: int,
            say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """For each T in ``lengths``: {"T": T, name: {"seconds": mean, "ci95": half-width}} over
    ``repeats`` timed generations per generator, after one warm-up, the generators interleaved so
    that a slow patch of a shared machine hits all of them alike."""
    runs = generators(lengths, sizes, seed)
    results = []
    for T in lengths:
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name, generate in runs.items():
            generate(T, 0)
        for s in range(1, repeats + 1):
            for name, generate in runs.items():
                times[name].append(B.wall_seconds(lambda: generate(T, s)))
        row = {name: mean_ci(t) for name, t in times.items()}
        results.append({"T": T, **{name: {"seconds": m, "ci95": h} for name, (m, h) in row.items()}})
        say(f"  T = {T:>4}: " + ", ".join(f"{name} {1e3 * row[name][0]:.1f} ms" for name in GENERATORS))
    return results


def table_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per length: milliseconds per generator (Tran et al.'s Table 3 at T = 288 beside
    ours), then the LSTM's time over the IAF / SCF's and over the bipartite flow's."""
    rows = []
    for r in results:
        lstm, iaf, bip = (r[name]["seconds"] for name in GENERATORS)
        paper = ("3.8 min", None, "0.17 s") if r["T"] == 288 else (None, None, None)
        times = (cell(1e3 * r[name]["seconds"], p, digits=1) for name, p in zip(GENERATORS, paper))
        rows.append([f"T = {r['T']}", *times, cell(lstm / iaf, digits=2), cell(lstm / bip, digits=2)])
    return rows


def run(settings: Settings) -> Report:
    """Milliseconds per generated sequence for each length and generator."""
    repeats = settings.pick_steps(10, 2)
    lengths = [4, 8] if settings.quick else LENGTHS
    sizes = dict(embed=8, hidden=8, layers=1, latent=4, bipartite=8) if settings.quick else \
        dict(embed=128, hidden=256, layers=2, latent=32, bipartite=128)
    results = measure(lengths, sizes, repeats, settings.seed, settings.say)
    rows = table_rows(results)
    table = Table(f"Ziegler and Rush 2019, Figure 7, and Tran et al. 2019, Table 3: milliseconds per generated "
                  f"sequence (batch 1, {B.get_backend()})",
                  [*GENERATORS, "LSTM / IAF", "LSTM / bipartite"], rows,
                  note="Tran et al.'s Table 3 at T = 288 on a P100 GPU in parentheses (a 3-layer LSTM of 1850 units)")
    notes = [f"{repeats} timed generations per length after a warm-up; sizes: embedding {sizes['embed']}, LSTMs "
             f"{sizes['layers']} x {sizes['hidden']}, latent {sizes['latent']}, 8 bipartite flows of width "
             f"{sizes['bipartite']}; untrained models",
             "Figure 7 (V100 GPU): IAF / SCF slower than the LSTM for very short sequences, faster after; on a CPU its "
             "own LSTMs run step by step too"]
    report = Report(table, notes, results={"lengths": results, "repeats": repeats, "sizes": sizes})
    save_figure(settings, "timing.png", draw(lengths, results), report)
    return report


def draw(lengths: list[int], results: list[dict[str, Any]]) -> Callable[[Any], None]:
    """Milliseconds per sequence (the table's unit) against T with 95% error bars, as plt -> None."""
    def plot(plt: Any) -> None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name in GENERATORS:
            ax.errorbar(lengths, [1e3 * r[name]["seconds"] for r in results],
                        yerr=[1e3 * r[name]["ci95"] for r in results], marker="o", capsize=3, label=name)
        ax.set(xlabel="sequence length T (characters, log scale)", ylabel="milliseconds per sequence (batch 1)",
               title="Generation time")
        ax.set_xscale("log", base=2)  # the lengths double, so each gets its own readable tick
        ax.set_xticks(lengths, [str(T) for T in lengths])
        ax.minorticks_off()
        ax.legend()
        fig.tight_layout()
    return plot
