"""Potts (Tran et al. 2019, Table 2) and Ising (the ICLR 2019 workshop version's Table 2) lattices:
an autoregressive base against the same base under the paper's tabular autoregressive flow,
compared under control, on equilibrium data (``potts``, ``ising``) and on non-equilibrium data
(``potts-nonequilibrium``, ``ising-nonequilibrium``).

Data: independent Metropolis-Hastings chains on an L x L lattice with a free boundary
(``mini_flows.data.lattice``; a sweep proposes a uniform new state at every site once,
checkerboard order), each giving its final configuration as one sample, flattened row-major to
D = L^2 sites. Potts: p(x) ∝ exp(J sum_{neighbours} [x_i = x_j]); Ising: p(s) ∝ exp(J sum s_i s_j),
s in {-1, +1}, stored as x = (s + 1) / 2. Training draws minibatches with replacement from a pool
of chains; the test NLL is on other chains. Every row reports the exact entropy of the
distribution sampled, the floor for both models:

- equilibrium: each chain starts from a uniform random configuration and runs 500 sweeps. At these
  couplings the chains are at equilibrium long before (even 500 single-site steps, the paper's
  words read literally, reach it: the mean energy then matches the exact one within two standard
  errors on 3 x 3 and 4 x 4), so the data are samples of p, whose entropy comes from a transfer
  matrix over rows.
- non-equilibrium: every chain starts from all sites in state 0 (Ising: every spin -1) and runs one
  sweep. The paper says "500 steps of Metropolis-Hastings" and no start; a fixed start is the
  reading under which its data could be out of equilibrium, and one sweep is the only count at
  which every row still is (at J = 0.1 two sweeps from all-0 already come within 0.004 nats of
  the equilibrium entropy on 3 x 3, by the kernel applied to the whole table). The first
  checkerboard colour is then independent and the second independent given the first, so the
  entropy has a closed form (``potts_one_sweep_entropy``).

Models: the base is an LSTM of the paper's width (Potts 32 units, Ising 8) reading the sites left
to right; the flow model is that base under one reversed autoregressive flow whose network is the
paper's Potts one, "an embedding layer which returns a trainable location parameter for every
unique combination of inputs": ``TabularNet``, a location logit vector per site for every
combination of the next c sites, c the most with K^c <= 4096 (7 of the 8 later sites at K = 3,
D = 9; 12 of 24 at K = 2, D = 25). Base first, with model selection: the base trains alone
(1000 Adam steps at learning rate 1e-2, no clipping), kept at its best NLL on 5000 validation
chains ("AR base"); the flow model then starts from that trained base with its flow exactly at
the identity (``on_trained_base``) and trains 1000 more steps, base and flow together, kept at its
best validation NLL ("AR flow"), so on the validation chains it ends at or below the base it
started from. The second stage also trains the base further, so the same base trained alone for
those 1000 steps on the same batches is the control ("AR base, 2 stages"); while the flow stays
the identity the flow model's base trains exactly as the control does.

What the numbers show (equilibrium data, seed 0, default estimator, base first with selection):
the flow model never ends measurably worse than the base it started from, but the tabular flow
itself does not help. Potts: on all 8 rows the flow model kept its start (the trained base,
flow - base exactly 0), since no checkpoint of the second stage scored better on validation,
while the base trained alone for that stage improved by up to 0.032 nats (measurably on 4 rows).
Ising: a tie on 3 rows and 0.03 to 0.04 nats below the base on the two coldest (beyond 2
standard errors), which is the base's own extra training: the control base is as good or better
on every row. Before base-first training and selection the flow was worse than the base beyond
2 standard errors on all 8 Potts and 4 of 5 Ising rows. With a table row per combination of the
next c sites, most rows are seen a few times in 1000 batches, and after a single gradient Adam
moves an entry by about 30 learning rates in all (momentum 0.9 over a second moment that
remembers 1000 steps): 0.3 at 1e-2, the identity margin, so one noisy straight-through gradient
relabels a row. A lower learning rate for the flow alone, tried on two rows, only moves it less
(1e-3, 3e-4: smaller losses; 1e-4: no moves, a tie); a wider identity margin (up to 3 = 30 tau)
or a table over the next 2 sites only did not win either, nor did training the flow over a held
base. On the one-sweep data (measured before base-first training) the base is within 0.11 nats
of the entropy and the flow tied or was worse on most rows.

Departures: the paper's base NLLs lie below the exact entropies of both our data sets on every
Potts row and on 3 of 5 Ising rows (e.g. 3.79 nats for 3 x 3, q = 3, J = 0.5, where the entropy is
9.50 at equilibrium and 6.07 after one sweep from all-0), which no model can do, so its data were
neither; compare our base with our flow, not ours with the paper's.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.data import ising_samples, potts_samples
from mini_flows.data.lattice import ising_entropy, ising_one_sweep_entropy, potts_entropy, potts_one_sweep_entropy
from mini_flows.discrete import DiscreteFlowModel, build_model, on_trained_base
from mini_flows.discrete.diagnostics import diagnostics_report
from mini_flows.discrete.flows import SPREAD
from mini_flows.discrete.one_hot import one_hot_to_tokens, tokens_to_one_hot
from mini_flows.experiments.evaluation import log_probs, mean_nll
from mini_flows.experiments.figures import save_figure, table_bars
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.nn.tree import Tree, first_leaf
from mini_flows.optim import Adam
from mini_flows.train import Progress, Validation, fit, linear_decay

POTTS = {  # (states q, L, J) -> paper's (AR base, AR flow), nats
    (3, 3, 0.1): (9.27, 9.124),
    (3, 3, 0.5): (3.79, 3.79),
    (3, 4, 0.1): (16.66, 11.23),
    (3, 4, 0.5): (6.30, 5.62),
    (4, 3, 0.1): (11.64, 10.45),
    (4, 3, 0.5): (5.87, 5.56),
    (5, 3, 0.1): (13.58, 10.25),
    (5, 3, 0.5): (7.94, 7.07),
}
ISING = {  # (L, J) -> the workshop paper's (AR base, AR flow), nats
    (4, 0.5): (0.73, 0.73),
    (5, 0.1): (1.62, 1.12),
    (5, 0.5): (0.92, 0.92),
    (5, 1.0): (7.54, 4.53),
    (5, 1.5): (15.05, 5.81),
}
SWEEPS = 500
"""Sweeps per chain for equilibrium data (from a uniform random start)."""
NONEQUILIBRIUM_SWEEPS = 1
"""Sweeps per chain for non-equilibrium data (from every site in state 0): the one count at which
every row is still measurably out of equilibrium, and whose distribution's entropy is exact."""
LEARNING_RATE = 1e-2
"""Adam's learning rate for both models (a lower one for the flow alone only moves it less)."""
VALIDATIONS = 10
"""Validation scores per training stage (and one at its start): ``fit`` keeps the best."""


def moved_fraction(model: DiscreteFlowModel, params: Tree, tokens: Array) -> float:
    """The fraction of sites of ``tokens`` (n, D) that the first flow's inverse changes
    (mu_d != 0): 0 where the flow is the identity on them."""
    flow = model.flows[0]
    y = tokens_to_one_hot(tokens, model.length, model.vocab_size, first_leaf(params).dtype)
    x, _, _ = flow.inverse(params["flow_0"], y)
    return float(B.xp().mean(one_hot_to_tokens(x) != tokens))


Pair = dict[str, tuple[DiscreteFlowModel, Tree]]
"""label ("AR base", "AR flow") -> (model, params)."""


def controlled_pair(q: int, D: int, hidden: int, seed: int, spread: float | None = SPREAD,
                    base: Tree | None = None) -> Pair:
    """The AR base (an LSTM of width ``hidden``) alone, and the same base under one reversed
    tabular flow (the paper's: a location logit vector per position and unique combination of the
    next sites; ``spread``: build_model's) started at the identity (``on_trained_base``): both
    from ``base``, a trained base's parameters, or where None from the same initial parameters
    (``seed``, the base's drawn first, so bit-identical)."""
    base_model = build_model("autoregressive", q, D, num_flows=0, hidden=hidden, network="lstm")
    flow = build_model("autoregressive", q, D, num_flows=1, hidden=hidden, network="tabular", base_network="lstm",
                       spread=spread)
    base = base_model.init(B.host_rng(seed))["base"] if base is None else base
    return {"AR base": (base_model, {"base": base}),
            "AR flow": (flow, on_trained_base(flow, base, B.host_rng(seed), first_leaf(base).dtype))}


def batch_stream(n: int, steps: int, batch: int, seed: int) -> Array:
    """Row indices (steps, batch) into a pool of n chains, drawn with replacement: step s trains
    on rows index[s], the same for every model of a comparison."""
    return B.rng(seed).integers(0, n, size=(steps, batch))


def train_one(name: str, model: DiscreteFlowModel, params: Tree, train: Array, valid: Array, index: Array,
              lr: float, progress: Callable[..., Progress] = Progress) -> tuple[Tree, dict[str, list]]:
    """Adam (``train.fit``, learning rate decaying linearly) on ``model`` from ``params``, step s on
    ``train[index[s]]``, without gradient clipping (a global-norm clip would let a flow's gradient
    shrink the base's steps, so a flow model whose flow stays the identity would train its base
    differently from the base alone), keeping the parameters of the best mean NLL on ``valid``
    (scored ``VALIDATIONS`` times). ``progress(name, steps, unit=...)`` makes the progress printer."""
    steps = index.shape[0]
    score = Validation(lambda p: mean_nll(partial(model.log_prob, p), valid), max(1, steps // VALIDATIONS))
    return fit(model.loss_and_grads, params, lambda s: train[index[s]], steps, Adam(lr=lr), linear_decay(lr, steps),
               progress(name, steps, unit="nats/seq"), validate=score)


def train_pair(pair: Pair, train: Array, valid: Array, index: Array, lr: float, label: str,
               progress: Callable[..., Progress] = Progress) -> tuple[Pair, dict[str, Any]]:
    """``train_one`` on each model of ``pair`` in turn, on the same batches. Returns the pair with
    trained parameters, and the flow model's straight-through diagnostics (``diagnostics_report``)
    under its name."""
    trained, diagnostics = {}, {}
    for name, (model, params) in pair.items():
        params, history = train_one(f"{name} {label}", model, params, train, valid, index, lr, progress)
        trained[name] = (model, params)
        if model.flows:
            diagnostics[name] = diagnostics_report(history)
    return trained, diagnostics


def compare(train: Any, valid: Any, test: Any, q: int, hidden: int, steps: int, seed: int, label: str,
            progress: Callable[..., Progress] = Progress, batch: int = 128,
            lr: float = LEARNING_RATE, spread: float | None = SPREAD,
            keep: Callable[..., None] | None = None) -> dict[str, Any]:
    """Base first, then the flow: the AR base alone trains ``steps`` steps on ``train`` (n, D)
    (kept at its best NLL on ``valid``); then, from it, the AR flow model (the flow at the
    identity, ``spread``) and, as a control, the base alone again train ``steps`` more steps on one
    new ``batch_stream``, each kept at its best on ``valid``, so the flow model ends no worse than
    the base it started from on ``valid``. Scored on ``test`` (m, D), in nats: the three test
    NLLs, the base's standard error over the test chains, the paired differences flow - base and
    flow - control with their standard errors, the fraction of test sites the trained flow moves,
    the flow's context (how many of the next sites index its table) and its training diagnostics.
    ``keep(label, model, params)`` (``Settings.keep_model``), where given, keeps each trained model."""
    train, valid, test = B.asarray(train), B.asarray(valid), B.asarray(test)
    first = controlled_pair(q, train.shape[1], hidden, seed, spread)["AR base"]
    base, _ = train_one(f"AR base {label}", *first, train, valid, batch_stream(train.shape[0], steps, batch, seed + 1),
                        lr, progress)
    pair = controlled_pair(q, train.shape[1], hidden, seed, spread, base=base["base"])
    pair, diagnostics = train_pair({"AR flow": pair["AR flow"], "AR base, 2 stages": pair["AR base"]}, train, valid,
                                   batch_stream(train.shape[0], steps, batch, seed + 2), lr, label, progress)
    if keep is not None:
        for name, (model, params) in {"AR base": (first[0], base), **pair}.items():
            keep(f"{name} {label}", model, params)
    xp = B.xp()
    base_log_p, flow_log_p, again_log_p = (log_probs(partial(model.log_prob, params), test)
                                           for model, params in (((first[0], base)), *pair.values()))
    root_m = test.shape[0] ** 0.5
    gain, gain_again = base_log_p - flow_log_p, again_log_p - flow_log_p
    return {"AR base": -float(xp.mean(base_log_p)), "base standard error": float(xp.std(base_log_p) / root_m),
            "AR flow": -float(xp.mean(flow_log_p)), "flow - base": float(xp.mean(gain)),
            "standard error": float(xp.std(gain) / root_m), "AR base, 2 stages": -float(xp.mean(again_log_p)),
            "flow - base, 2 stages": float(xp.mean(gain_again)),
            "standard error, 2 stages": float(xp.std(gain_again) / root_m),
            "moved": moved_fraction(*pair["AR flow"], test),
            "flow context": pair["AR flow"][0].flows[0].network.context, "diagnostics": diagnostics["AR flow"]}


def gap_recovered(scores: dict[str, float], entropy: float) -> float | None:
    """(base - flow) / (base - entropy): the share of the base's gap to the exact entropy that the
    flow closes (negative where the flow is worse); None where the gap is not measurable, i.e. not
    above 2 standard errors of the base's test NLL."""
    gap = scores["AR base"] - entropy
    return -scores["flow - base"] / gap if gap > 2 * scores["base standard error"] else None


class Case(NamedTuple):
    """One table row: its label, the states q, the side L, ``sample(n, seed=...)`` -> configurations
    (n, L, L), the exact entropy of the distribution sampled, and the paper's (AR base, AR flow) NLLs."""

    label: str
    q: int
    L: int
    sample: Callable[..., Any]
    entropy: float
    paper: tuple[float, float]


def potts_cases(equilibrium: bool, sweeps: int) -> list[Case]:
    """The rows of Table 2, sampled by ``sweeps`` sweeps from a uniform random start
    (``equilibrium``, entropy by transfer matrix) or from every site in state 0 (one sweep only:
    the entropy of that distribution is exact)."""
    cases = []
    for (q, L, J), paper in POTTS.items():
        entropy = potts_entropy(L, q, J) if equilibrium else potts_one_sweep_entropy(L, q, J)
        sample = partial(potts_samples, L=L, q=q, J=J, steps=sweeps, start="uniform" if equilibrium else "fixed")
        cases.append(Case(f"states {q}, D = {L * L}, J = {J}", q, L, sample, entropy, paper))
    return cases


def ising_cases(equilibrium: bool, sweeps: int) -> list[Case]:
    """The rows of the workshop's Table 2 (energy -J sum s_i s_j over neighbours, spins +-1),
    sampled as in ``potts_cases``."""
    cases = []
    for (L, J), paper in ISING.items():
        entropy = ising_entropy(L, J) if equilibrium else ising_one_sweep_entropy(L, J)
        sample = partial(ising_samples, L=L, J=J, steps=sweeps, start="uniform" if equilibrium else "fixed")
        cases.append(Case(f"D = {L * L}, coupling = {J}", 2, L, sample, entropy, paper))
    return cases


def _run(settings: Settings, make_cases: Callable[[bool, int], list[Case]], equilibrium: bool, title: str,
         hidden: int, offset: int, figure: str) -> Report:
    """One row per case: both models on its chains. Row r's chains use seed 100 seed + 2 r + offset
    (Potts 0, Ising 1: never the same chains)."""
    n_train, n_valid, n_test = (200, 50, 100) if settings.quick else (50000, 5000, 10000)
    steps = settings.pick_steps(1000, 5)
    sweeps = (20 if settings.quick else SWEEPS) if equilibrium else NONEQUILIBRIUM_SWEEPS
    cases = make_cases(equilibrium, sweeps)
    rows, results = [], {}
    settings.clock.plan(3 * len(cases) * steps)
    for row, case in enumerate(cases):
        data = case.sample(n_train + n_valid + n_test, seed=settings.seed * 100 + 2 * row + offset)
        data = data.reshape(data.shape[0], -1)
        scores = compare(data[:n_train], data[n_train:n_train + n_valid], data[n_train + n_valid:], case.q, hidden,
                         steps, settings.seed, case.label, settings.progress, spread=settings.spread,
                         keep=settings.keep_model)
        gap, recovered = scores["AR base"] - case.entropy, gap_recovered(scores, case.entropy)
        rows.append([case.label, cell(scores["AR base"], case.paper[0]), cell(scores["AR flow"], case.paper[1]),
                     f"{scores['flow - base']:+.4f} ± {2 * scores['standard error']:.4f}",
                     cell(scores["AR base, 2 stages"]),
                     f"{scores['flow - base, 2 stages']:+.4f} ± {2 * scores['standard error, 2 stages']:.4f}",
                     cell(100 * scores["moved"], digits=1), cell(case.entropy),
                     f"{gap:+.3f} ± {2 * scores['base standard error']:.3f}",
                     cell(None if recovered is None else 100 * recovered + 0.0, digits=0)])
        results[case.label] = {**scores, "entropy": case.entropy, "base gap": gap, "gap recovered": recovered}
    start = "a uniform random start" if equilibrium else "every site in state 0 (Ising: spin -1), the same for all"
    floor = ("the distribution sampled, p itself (the chains are at equilibrium), by a transfer matrix over rows"
             if equilibrium else "the one-sweep distribution sampled (not p), in closed form "
             "(data.lattice.potts_one_sweep_entropy)")
    contexts = ", ".join(dict.fromkeys(f"{results[c.label]['flow context']} for K = {c.q}, D = {c.L**2}"
                                       for c in cases))
    notes = [f"data: {n_train} training, {n_valid} validation and {n_test} test chains (other chains), each {sweeps} "
             f"Metropolis-Hastings sweep{'s' if sweeps > 1 else ''} from {start}, free boundary; one sample per chain",
             f"base first: the AR base, an LSTM of {hidden} units, trains {steps} Adam steps alone; then from it the AR "
             f"flow (the base under one reversed tabular flow started at the identity, a location logit vector per "
             f"site for every combination of the next c sites: c = {contexts}) and, as a control, the base alone "
             f"again ('AR base, 2 stages') train {steps} more steps on the same batches; batch 128, learning rate "
             f"{LEARNING_RATE:g} decaying linearly in each stage, no clipping; every model keeps the parameters of its "
             f"best validation NLL ({VALIDATIONS} scores per stage and its start), so the flow ends no worse than "
             "its base on the validation chains",
             "flow - base, flow - base 2 stages: the paired test NLL differences and 2 standard errors over the test "
             "chains (negative: the flow is better); moved: % of test sites the trained flow relabels (mu != 0)",
             f"exact entropy: of {floor}, the lowest NLL any model can reach; base gap: base - entropy, 2 standard "
             "errors of the base's test NLL; gap recovered: (base - flow) / base gap in %, '-' where the gap is "
             "not above its 2 standard errors",
             _verdict_note(results), *_still_note(results), _paper_note(cases)]
    table = Table(title, ["AR base", "AR flow", "flow - base", "AR base, 2 stages", "flow - base, 2 stages",
                          "moved %", "exact entropy", "base gap", "gap recovered %"], rows)
    report = Report(table, notes, results={"rows": results, "steps": steps, "sweeps": sweeps,
                                           "start": "uniform" if equilibrium else "fixed"})
    save_figure(settings, f"{figure}.png", table_bars(table, ["AR base", "AR flow", "exact entropy"],
                                                      "test NLL (nats)"), report)
    return report


def _verdict_note(results: dict[str, dict[str, Any]]) -> str:
    """How many rows the flow is below, above or within 2 standard errors of the base it started
    from, and of the base trained alone for both stages."""
    counts = []
    for key, error in (("flow - base", "standard error"), ("flow - base, 2 stages", "standard error, 2 stages")):
        below = sum(r[key] < -2 * r[error] for r in results.values())
        above = sum(r[key] > 2 * r[error] for r in results.values())
        counts.append(f"{below} below, {above} above, {len(results) - below - above} within")
    return (f"flow against the base it started from, beyond 2 standard errors on {len(results)} rows: {counts[0]}; "
            f"against the base alone for both stages: {counts[1]}")


def _still_note(results: dict[str, dict[str, Any]]) -> list[str]:
    """A note where the trained flow relabelled no test site on any row."""
    if any(r["moved"] > 0 for r in results.values()):
        return []
    return ["the kept flow is the identity on every test site of every row: the flow model is its base, at the "
            "start of the second stage or trained on with the flow unmoved; no relabelling won on validation"]


def _paper_note(cases: list[Case]) -> str:
    """Where the paper's base NLL lies below the exact entropy of our data, which no model can do."""
    below = sum(case.paper[0] < case.entropy for case in cases)
    if not below:
        return "the paper's NLLs are all above the exact entropies of these data"
    return (f"the paper's base NLL lies below the exact entropy of these data on {below} of {len(cases)} rows, "
            "which no model can do, so its data were not these: compare base with flow, not ours with the paper's")


def run_potts(settings: Settings) -> Report:
    """Table 2: Potts models on 3 x 3 and 4 x 4 lattices, q = 3 to 5 states, J = 0.1 and 0.5,
    equilibrium data."""
    return _run(settings, potts_cases, True,
                "Tran et al. 2019, Table 2: Potts models, test NLL in nats (lower is better)",
                hidden=8 if settings.quick else 32, offset=0, figure="potts")


def run_potts_nonequilibrium(settings: Settings) -> Report:
    """Table 2's Potts models on non-equilibrium data: one sweep from every site in state 0."""
    return _run(settings, potts_cases, False,
                "Tran et al. 2019, Table 2: Potts models, one sweep from all-0, test NLL in nats (lower is better)",
                hidden=8 if settings.quick else 32, offset=0, figure="potts-nonequilibrium")


def run_ising(settings: Settings) -> Report:
    """The workshop's Table 2: Ising models on 4 x 4 and 5 x 5 lattices, couplings 0.1 to 1.5,
    equilibrium data."""
    return _run(settings, ising_cases, True,
                "Tran et al. 2019 (ICLR workshop), Table 2: Ising models, test NLL in nats (lower is better)",
                hidden=8, offset=1, figure="ising")


def run_ising_nonequilibrium(settings: Settings) -> Report:
    """The workshop's Table 2's Ising models on non-equilibrium data: one sweep from every spin -1."""
    return _run(settings, ising_cases, False,
                "Tran et al. 2019 (ICLR workshop), Table 2: Ising models, one sweep from all -1, test NLL in nats "
                "(lower is better)", hidden=8, offset=1, figure="ising-nonequilibrium")
