"""Potts (Tran et al. 2019, Table 2) and Ising (the ICLR 2019 workshop version's Table 2) lattices:
an autoregressive base against the same base under one autoregressive flow.

Data: n independent Metropolis-Hastings chains of 500 sweeps each on an L x L lattice with a free
boundary (``mini_flows.data.lattice``), one sample per chain, flattened row-major to D = L^2
sites. An undirected model has no natural order, so a left-to-right base pays for the one it
imposes; the flow (the first flow in reversed order, as in the paper) lets each site's
relabelling depend on the sites after it. Both models are LSTMs of the paper's width (Potts 32
units, Ising 8), trained with Adam on minibatches of a fixed training set and scored by their NLL
on held-out chains. Where the lattice is small enough to enumerate (q^D <= 2^22) the true entropy
is exact, the floor for both.

Departures: the flow's network is an LSTM of the same width (the paper's Potts flow used an
embedding per unique input combination), and it starts at the identity (``start_at_identity``).
The paper's Potts numbers (3.79 nats for 3 x 3, q = 3, J = 0.5, whose entropy is 9.50) and the
workshop's Ising numbers (1.62 nats for 25 spins at coupling 0.1, entropy about 17.3) lie far
below the entropies of these distributions, so their samples cannot have come from them at
equilibrium (a stronger effective coupling, or chains far from mixing); ours do, and at
equilibrium these lattices are nearly uniform and easy for the base, so the two models end
within a few hundredths of a nat of each other and of the entropy.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.data import ising_exact, ising_samples, potts_exact, potts_samples, table_entropy
from mini_flows.data.lattice import MAX_EXACT_STATES
from mini_flows.discrete import build_model
from mini_flows.experiments.common import Report, Settings, Table, cell, fit, mean_nll, start_at_identity

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


def compare(train: Any, test: Any, q: int, hidden: int, steps: int, seed: int, label: str, verbose: bool,
            batch: int = 128, lr: float = 1e-2) -> dict[str, float]:
    """Test NLLs of the AR base and the AR flow (1 reversed flow), both LSTMs of width ``hidden``,
    trained for ``steps`` Adam steps on minibatches drawn with replacement from ``train`` (n, D)."""
    train, test = B.asarray(train), B.asarray(test)
    D = train.shape[1]
    scores = {}
    for name, flows in (("AR base", 0), ("AR flow", 1)):
        model = build_model("autoregressive", q, D, num_flows=flows, hidden=hidden, network="lstm", seed=seed)
        start_at_identity(model)
        rng = B.rng(seed + 1)
        fit(model, lambda s: train[rng.integers(0, train.shape[0], size=batch)], steps, lr, f"{name} {label}", verbose)
        scores[name] = mean_nll(model.log_prob, test)
    return scores


def _run(settings: Settings, cases: list[tuple[str, int, Any, Any, tuple[float, float]]], title: str,
         hidden: int, offset: int) -> Report:
    """One row per case (row label, states q, sample(n, seed, sweeps) -> configs (n, L, L),
    exact() -> probability table or None, the paper's (base, flow)): both models on its chains.
    Row r's chains use seed 100 seed + 2 r + offset (Potts 0, Ising 1: never the same chains)."""
    n_train, n_test = (200, 100) if settings.quick else (20000, 5000)
    steps = settings.pick_steps(1000, 5)
    sweeps = 20 if settings.quick else SWEEPS
    rows, results = [], {}
    for row, (label, q, sample, exact, paper) in enumerate(cases):
        data = sample(n_train + n_test, settings.seed * 100 + 2 * row + offset, sweeps)
        data = data.reshape(data.shape[0], -1)
        scores = compare(data[:n_train], data[n_train:], q, hidden, steps, settings.seed, label, settings.verbose)
        entropy = None if exact is None else table_entropy(exact())
        rows.append([label, cell(scores["AR base"], paper[0]), cell(scores["AR flow"], paper[1]), cell(entropy)])
        results[label] = {**scores, "entropy": entropy}
    notes = [f"{n_train} training and {n_test} test chains of {sweeps} Metropolis-Hastings sweeps; {steps} Adam "
             f"steps per model; LSTMs of {hidden} units for the base and the flow",
             "true entropy: exact by enumeration where q^D <= 2^22, else -",
             "the paper's data cannot have been these equilibrium distributions (at J = 0.1 its NLLs lie far below "
             "their entropies), ours are: compare base with flow, not ours with the paper's"]
    table = Table(title, ["AR base", "AR flow", "true entropy"], rows)
    return Report(table, notes, results={"rows": results, "steps": steps})


def run_potts(settings: Settings) -> Report:
    """Table 2: Potts models on 3 x 3 and 4 x 4 lattices, q = 3 to 5 states, J = 0.1 and 0.5."""
    cases = []
    for (q, L, J), paper in POTTS.items():
        def sample(n: int, seed: int, sweeps: int, q: int = q, L: int = L, J: float = J) -> Any:
            return potts_samples(n, L, q, J, seed, steps=sweeps)

        def exact(q: int = q, L: int = L, J: float = J) -> Any:
            return potts_exact(L, q, J)

        small = q ** (L * L) <= MAX_EXACT_STATES
        cases.append((f"states {q}, D = {L * L}, J = {J}", q, sample, exact if small else None, paper))
    return _run(settings, cases, "Tran et al. 2019, Table 2: Potts models, test NLL in nats (lower is better)",
                hidden=8 if settings.quick else 32, offset=0)


def run_ising(settings: Settings) -> Report:
    """The workshop's Table 2: Ising models on 4 x 4 and 5 x 5 lattices, couplings 0.1 to 1.5
    (energy -J sum s_i s_j over neighbours, spins +-1)."""
    cases = []
    for (L, J), paper in ISING.items():
        def sample(n: int, seed: int, sweeps: int, L: int = L, J: float = J) -> Any:
            return ising_samples(n, L, J, seed, steps=sweeps)

        def exact(L: int = L, J: float = J) -> Any:
            return ising_exact(L, J)

        small = 2 ** (L * L) <= MAX_EXACT_STATES
        cases.append((f"D = {L * L}, coupling = {J}", 2, sample, exact if small else None, paper))
    return _run(settings, cases,
                "Tran et al. 2019 (ICLR workshop), Table 2: Ising models, test NLL in nats (lower is better)", hidden=8,
                offset=1)
