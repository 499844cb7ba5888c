"""Table 1 of Tran et al. (2019): full-rank discrete distributions.

For each (D, K) a true distribution over all K^D outcomes is drawn from a Dirichlet(alpha = 1)
(``data.toy.dirichlet_table``), and four models learn it from samples:

    autoregressive base      p(x) = prod_d p(x_d | x_<d), an LSTM
    autoregressive flow      the same base under 1 discrete autoregressive flow (reversed order)
    factorized base          p(x) = prod_d p(x_d)
    bipartite flow           the factorized base under 4 bipartite flows (even/odd alternating)

Every model is scored by its cross-entropy against the true table, -sum_x p(x) log q(x), exactly
(by enumeration) where K^D <= 10^5 and on held-out samples otherwise; the table's entropy H(p)
bounds all four from below.

Departures from the paper, for speed on a CPU: LSTMs (autoregressive) and MLPs (bipartite) of
64 units instead of Transformers; each flow starts at the identity (``start_at_identity``), so a
flow model starts as its base; fresh samples every step instead of a fixed training set. The
paper's (5, 10) numbers lie below log 10^5 - (1 - Euler's gamma) = 11.09 nats, the expected
entropy of a Dirichlet(1) table that size, so they must be training-set numbers; ours are
population numbers and at this budget the two large tables are not learnable beyond uniform.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.data import dirichlet_table, sample_table, table_entropy
from mini_flows.discrete import build_model
from mini_flows.experiments.common import (
    Report,
    Settings,
    Table,
    all_sequences,
    cell,
    fit,
    mean_nll,
    start_at_identity,
)

SIZES = [(2, 2), (5, 5), (5, 10), (10, 5)]
PAPER = {  # (D, K) -> AR base, AR flow, factorized base, bipartite flow (nats)
    (2, 2): (0.9, 0.9, 1.3, 1.0),
    (5, 5): (7.7, 7.6, 8.0, 7.9),
    (5, 10): (10.7, 10.3, 11.5, 10.7),
    (10, 5): (15.9, 15.7, 16.6, 16.0),
}
MODELS = {  # label -> (kind, flows, network, learning rate)
    "AR base": ("autoregressive", 0, "lstm", 3e-3),
    "AR flow": ("autoregressive", 1, "lstm", 3e-3),
    "factorized base": ("bipartite", 0, "mlp", 1e-2),
    "bipartite flow": ("bipartite", 4, "mlp", 1e-2),
}
EXACT_LIMIT = 10**5
TEST_SAMPLES = 20000


def cross_entropy(log_prob: Any, table: Any, test: Any) -> float:
    """-sum_x p(x) log q(x) by enumeration (``test`` None), else -mean log q on the test samples."""
    if test is not None:
        return mean_nll(log_prob, test)
    D, K = table.ndim, table.shape[0]
    everything = all_sequences(D, K)
    p = B.asarray(table.reshape(-1))
    total = 0.0
    for start in range(0, K**D, 4096):
        total += float(B.xp().sum(p[start:start + 4096] * log_prob(everything[start:start + 4096])))
    return -total


def run(settings: Settings) -> Report:
    """All four models on every (D, K); the table's rows are the sizes."""
    steps = settings.pick_steps(1500, 5)
    hidden, batch = (8, 16) if settings.quick else (64, 128)
    limit, held_out = (3125, 500) if settings.quick else (EXACT_LIMIT, TEST_SAMPLES)
    rows, results = [], {}
    for row, (D, K) in enumerate(SIZES):
        seed = settings.seed * 100 + row
        table = dirichlet_table(D, K, seed)
        entropy = table_entropy(table)
        data = B.asarray(sample_table(table, steps * batch, seed + 1))
        exact = K**D <= limit
        test = None if exact else B.asarray(sample_table(table, held_out, seed + 2))
        settings.say(f"D = {D}, K = {K}: {K**D} outcomes, entropy {entropy:.3f} nats")
        scores = {}
        for label, (kind, flows, network, lr) in MODELS.items():
            model = build_model(kind, K, D, num_flows=flows, hidden=hidden, network=network,
                                seed=settings.seed)
            start_at_identity(model)
            fit(model, lambda s: data[s * batch:(s + 1) * batch], steps, lr, f"{label} D={D} K={K}", settings.verbose)
            scores[label] = cross_entropy(model.log_prob, table, test)
        paper = PAPER[(D, K)]
        rows.append([f"D = {D}, K = {K}", *(cell(scores[m], p) for m, p in zip(MODELS, paper)), cell(entropy)])
        results[f"D={D},K={K}"] = {**scores, "entropy": entropy, "exact": exact}
    table = Table("Tran et al. 2019, Table 1: full-rank discrete distributions, NLL in nats (lower is better)",
                  [*MODELS, "true entropy"], rows)
    notes = [f"{steps} Adam steps of {batch} fresh samples per model; cross-entropy against the true table, exact "
             f"where K^D <= {limit}, else on {held_out} held-out samples",
             "networks: LSTM (AR base and flow) and MLP (bipartite), 64 units; the paper used 64-unit Transformers",
             "the paper's D = 5, K = 10 numbers lie below the expected entropy of such a table (11.09 nats): "
             "training-set numbers; ours are against the true distribution"]
    return Report(table, notes, results={"sizes": results, "steps": steps})
