"""The full-rank experiment's measures: the empirical entropy, exact cross-entropy by enumeration,
epochs over a fixed training set, paired standard errors, and a quick run's results.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mini_flows import backend as B
from mini_flows.data import dirichlet_table, sample_table, table_entropy
from mini_flows.discrete import build_model
from mini_flows.experiments.evaluation import mean_nll
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.fullrank import (
    MODELS,
    best_relabelled_factorized,
    cross_entropy,
    empirical_entropy,
    epochs,
    paired_se,
    run,
)


def test_empirical_entropy_of_a_hand_example():
    # rows (0, 1) twice, (1, 0) once, (1, 1) once: p_hat = 1/2, 1/4, 1/4
    tokens = B.asarray([[0, 1], [1, 0], [0, 1], [1, 1]])
    assert math.isclose(empirical_entropy(tokens, 2), 1.5 * math.log(2), rel_tol=1e-12)
    assert empirical_entropy(B.asarray([[2, 0, 1]] * 5), 3) == 0.0


@given(K=st.integers(2, 4), D=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_empirical_distribution_has_training_nll_equal_to_the_empirical_entropy(K, D, seed):
    tokens = sample_table(dirichlet_table(D, K, seed % 1000), 50, seed)
    counts = {}
    for row in map(tuple, tokens):
        counts[row] = counts.get(row, 0) + 1
    log_p_hat = lambda t: B.asarray([math.log(counts[tuple(r)] / 50) for r in B.to_numpy(t)])  # noqa: E731
    assert math.isclose(mean_nll(log_p_hat, B.asarray(tokens)), empirical_entropy(B.asarray(tokens), K),
                        rel_tol=1e-12, abs_tol=1e-12)


@given(kind=st.sampled_from(["autoregressive", "bipartite"]), seed=st.integers(0, 2**32 - 1))
def test_exact_cross_entropy_of_a_model_equals_the_enumeration(kind, seed):
    D, K = 3, 3
    table = dirichlet_table(D, K, seed % 1000)
    model = build_model(kind, K, D, num_flows=2, hidden=4, network="lstm" if kind == "autoregressive" else "mlp")
    params = model.init(B.host_rng(seed))
    seqs = np.array([[i // 9, i // 3 % 3, i % 3] for i in range(27)])
    log_q = B.to_numpy(model.log_prob(params, B.asarray(seqs)))
    assert math.isclose(np.exp(log_q).sum(), 1.0, rel_tol=1e-9)
    expected = -sum(table[tuple(s)] * lq for s, lq in zip(seqs, log_q))
    log_prob = lambda tokens: model.log_prob(params, tokens)  # noqa: E731
    assert math.isclose(cross_entropy(log_prob, table), expected, rel_tol=1e-10)
    assert cross_entropy(log_prob, table) >= table_entropy(table) - 1e-12


def test_epochs_visit_every_row_once_per_epoch_in_fresh_orders():
    data = B.asarray(np.arange(12)[:, None])
    batch = epochs(data, 4, 6, seed=0)
    rows = [B.to_numpy(batch(s))[:, 0].tolist() for s in range(6)]
    first, second = sum(rows[:3], []), sum(rows[3:], [])
    assert sorted(first) == sorted(second) == list(range(12))
    assert first != second


def test_the_best_relabelled_factorized_fit_of_a_hand_example():
    """p = [[0.5, 0], [0, 0.5]]: x2 = x1, fully correlated. The factorized fit of p itself pays
    2 log 2; relabelling (1, 1) as (0, 1) makes x1 uniform and x2 = 1 certain: log 2."""
    table = np.array([[0.5, 0.0], [0.0, 0.5]])
    assert math.isclose(best_relabelled_factorized(table), math.log(2), rel_tol=1e-12)


@given(K=st.integers(2, 2), D=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_no_relabelling_beats_the_entropy_and_the_identity_is_one_of_them(K, D, seed):
    table = dirichlet_table(D, K, seed % 1000)
    best = best_relabelled_factorized(table)
    marginals = sum(table_entropy(table.sum(axis=tuple(a for a in range(D) if a != d))) for d in range(D))
    assert table_entropy(table) - 1e-12 <= best <= marginals + 1e-12


def test_relabellings_of_large_tables_are_refused():
    with pytest.raises(ValueError, match="limited to 8"):
        best_relabelled_factorized(dirichlet_table(2, 3, 0))


def test_paired_standard_error():
    a, b = B.asarray([1.0, 2.0, 3.0, 4.0]), B.asarray([0.0, 2.0, 2.0, 4.0])
    assert math.isclose(paired_se(a, b), np.std([1.0, 0.0, 1.0, 0.0]) / 2, rel_tol=1e-12)
    assert paired_se(a, a + 1.0) == 0.0


def test_quick_run_reports_both_measures_for_every_model(tmp_path):
    report = run(Settings(out=tmp_path, seed=2, quick=True, verbose=False))
    record = json.loads(json.dumps(report.results))
    sizes = record["sizes"]
    assert list(sizes) == ["D=2,K=2", "D=5,K=5", "D=5,K=10", "D=10,K=5"]
    for r in sizes.values():
        assert set(r["train"]) == set(r["population"]) == set(MODELS)
        assert all(v >= r["train_entropy"] - 1e-9 for v in r["train"].values())
        assert all(v >= r["entropy"] - 1e-9 for v in r["population"].values()) or not r["exact"]
        assert ("paired_se" in r) == (not r["exact"])
        assert set(r["train_se"]) == {"AR flow - AR base", "bipartite flow - factorized base"}
        assert all(se >= 0 for se in r["train_se"].values())
    assert sizes["D=2,K=2"]["best_relabelled_factorized"] <= sizes["D=2,K=2"]["population"]["factorized base"] + 1e-9
    assert all("best_relabelled_factorized" not in r for size, r in sizes.items() if size != "D=2,K=2")
    labels = [row[0] for row in report.table.rows]
    assert len(labels) == 8 and sum("training set" in x for x in labels) == 4 and sum("population" in x for x in labels) == 4
