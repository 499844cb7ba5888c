"""The Potts and Ising comparison is controlled: the flow model starts as the base bit for bit, both
models start from the same base parameters and see the same batches, and while the flow stays the
identity the two train to the same parameters. Base first: the flow starts from the trained base
and, kept at its best validation score, ends no worse than that base there. The table's gap
columns, and the equilibrium and non-equilibrium rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mini_flows import backend as B
from mini_flows.data import potts_samples
from mini_flows.data.lattice import ising_entropy, ising_one_sweep_entropy, potts_entropy, potts_one_sweep_entropy
from mini_flows.discrete import build_model, identity_start
from mini_flows.discrete.networks import LSTMNet, TabularNet
from mini_flows.experiments import Settings
from mini_flows.experiments.lattice import (
    ISING,
    POTTS,
    batch_stream,
    compare,
    controlled_pair,
    gap_recovered,
    ising_cases,
    moved_fraction,
    potts_cases,
    run_ising_nonequilibrium,
    train_one,
    train_pair,
)
from mini_flows.nn.tree import flatten
from mini_flows.train import Progress

seeds = st.integers(0, 2**32 - 1)


def QUIET(label: str, steps: int, unit: str | None = None) -> Progress:
    return Progress(label, steps, verbose=False, unit=unit)


def same_tree(a, b) -> bool:
    a, b = flatten(a), flatten(b)
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@settings(max_examples=10)
@given(st.integers(2, 5), st.integers(2, 10), st.integers(1, 8), seeds)
def test_the_pair_starts_as_one_model(q, D, hidden, seed):
    (base, base_params), (flow, flow_params) = controlled_pair(q, D, hidden, seed).values()
    assert same_tree(base_params["base"], flow_params["base"])
    tokens = B.asarray(np.random.default_rng(seed).integers(0, q, size=(64, D)))
    assert np.array_equal(base.log_prob(base_params, tokens), flow.log_prob(flow_params, tokens))
    assert moved_fraction(flow, flow_params, tokens) == 0.0
    assert isinstance(flow.flows[0].network, TabularNet) and isinstance(flow.base.network, LSTMNet)


def test_a_random_flow_head_is_not_the_identity_but_identity_start_makes_it_so():
    model = build_model("autoregressive", 2, 16, num_flows=1, hidden=8, network="tabular", base_network="lstm")
    params = model.init(B.host_rng(0))
    tokens = B.asarray(np.random.default_rng(0).integers(0, 2, size=(256, 16)))
    assert moved_fraction(model, params, tokens) > 0.05
    assert moved_fraction(model, identity_start(model, params), tokens) == 0.0


def test_moved_fraction_counts_relabelled_sites():
    flow, params = controlled_pair(3, 5, 4, seed=1)["AR flow"]
    net = params["flow_0"]["network"]
    net["bias"] = net["bias"][:, ::-1].copy()  # the margin now sits on mu = 2 at every site
    tokens = B.asarray(np.random.default_rng(1).integers(0, 3, size=(50, 5)))
    assert moved_fraction(flow, params, tokens) == 1.0


def test_both_models_see_the_same_batches_and_train_alike_while_the_flow_stays_put():
    """2 Adam steps of size 1e-2 move each parameter by at most about 2e-2, so a location logit (a
    table entry plus a bias) by 4e-2 and the difference of two by 8e-2 < 0.3, the identity margin:
    the flow stays the identity and the bases must end bit-identical."""
    train = B.asarray(potts_samples(300, 3, 3, 0.5, seed=2, steps=5).reshape(300, 9))
    pair = controlled_pair(3, 9, 6, seed=3)
    seen = {name: [] for name in pair}
    for name, (model, _) in pair.items():
        def record(params, tokens, name=name, step=model.loss_and_grads):
            seen[name].append(tokens.copy())
            return step(params, tokens)
        model.loss_and_grads = record
    index = batch_stream(300, 2, 16, seed=4)
    trained, diagnostics = train_pair(pair, train, train[:20], index, 1e-2, "test", QUIET)
    assert len(seen["AR base"]) == 2 and all(np.array_equal(a, b) for a, b in zip(*seen.values()))
    assert moved_fraction(*trained["AR flow"], train) == 0.0
    assert same_tree(trained["AR base"][1]["base"], trained["AR flow"][1]["base"])
    assert list(diagnostics) == ["AR flow"] and diagnostics["AR flow"]["final"]["flow_0"]["moved"] == 0.0


def test_batch_stream_is_seeded_and_in_range():
    index = batch_stream(40, 7, 5, seed=9)
    assert index.shape == (7, 5) and index.min() >= 0 and index.max() < 40
    assert np.array_equal(index, batch_stream(40, 7, 5, seed=9))
    assert not np.array_equal(index, batch_stream(40, 7, 5, seed=10))


def test_compare_reports_the_paired_differences():
    data = potts_samples(280, 3, 3, 0.5, seed=5, steps=5).reshape(280, 9)
    scores = compare(data[:200], data[200:220], data[220:], 3, hidden=4, steps=2, seed=0, label="t", progress=QUIET)
    assert scores["AR flow"] == scores["AR base, 2 stages"] and scores["flow - base, 2 stages"] == 0.0
    assert scores["moved"] == 0.0 and scores["standard error, 2 stages"] == 0.0 and 9.0 < scores["AR base"] < 11.0
    assert math.isclose(scores["flow - base"], scores["AR flow"] - scores["AR base"], abs_tol=1e-12)
    assert 0.0 < scores["base standard error"] < 0.5 and scores["flow context"] == 7  # 3^7 <= 4096 < 3^8


def test_the_pair_can_start_from_a_trained_base():
    trained = build_model("autoregressive", 3, 5, num_flows=0, hidden=4, network="lstm").init(B.host_rng(7))["base"]
    (base, base_params), (flow, flow_params) = controlled_pair(3, 5, 4, seed=1, base=trained).values()
    assert same_tree(base_params["base"], trained) and same_tree(flow_params["base"], trained)
    tokens = B.asarray(np.random.default_rng(2).integers(0, 3, size=(32, 5)))
    assert np.array_equal(base.log_prob(base_params, tokens), flow.log_prob(flow_params, tokens))


def test_base_first_the_flow_never_ends_worse_than_its_base_on_validation():
    """A learning rate so high that every step makes things worse: the flow model, kept at its best
    validation score, is its starting point, the trained base, exactly."""
    data = B.asarray(potts_samples(300, 3, 3, 0.5, seed=6, steps=5).reshape(300, 9))
    base_model, base_params = controlled_pair(3, 9, 4, seed=0)["AR base"]
    base, history = train_one("base", base_model, base_params, data[:200], data[200:250],
                              batch_stream(200, 20, 16, seed=1), 1e-2, QUIET)
    assert history["valid_step"] == [0, *range(2, 21, 2)]
    flow_model, start = controlled_pair(3, 9, 4, seed=0, base=base["base"])["AR flow"]
    flow, history = train_one("flow", flow_model, start, data[:200], data[200:250],
                              batch_stream(200, 10, 16, seed=2), 10.0, QUIET)
    assert history["best_step"] == [0] and same_tree(flow, start)
    score = lambda model, params: -float(B.xp().mean(model.log_prob(params, data[200:250])))
    assert score(flow_model, flow) == score(base_model, base) == min(history["valid"])


def test_gap_recovered_is_the_flow_gain_over_a_measurable_base_gap():
    scores = {"AR base": 10.5, "base standard error": 0.01, "flow - base": -0.1}
    assert math.isclose(gap_recovered(scores, 10.1), 0.25)
    assert math.isclose(gap_recovered({**scores, "flow - base": 0.2}, 10.1), -0.5)
    assert gap_recovered(scores, 10.49) is None  # a gap of 0.01 is not above 2 standard errors
    assert gap_recovered(scores, 10.6) is None  # nor is a base below the entropy


@pytest.mark.parametrize("make_cases, table, exact, one_sweep", [(potts_cases, POTTS, potts_entropy,
                                                                    potts_one_sweep_entropy),
                                                                   (ising_cases, ISING, ising_entropy,
                                                                    ising_one_sweep_entropy)])
def test_cases_sample_the_paper_lattices_at_or_out_of_equilibrium(make_cases, table, exact, one_sweep):
    equilibrium, fixed = make_cases(True, 2), make_cases(False, 1)
    assert [c.paper for c in equilibrium] == [c.paper for c in fixed] == list(table.values())
    for (*_, J), at, out in zip(table, equilibrium, fixed):
        q_args = (at.q,) if make_cases is potts_cases else ()
        assert math.isclose(at.entropy, exact(at.L, *q_args, J))
        assert math.isclose(out.entropy, one_sweep(at.L, *q_args, J))
        uniform, zeros = at.sample(50, seed=3), out.sample(50, seed=3)
        assert uniform.shape == zeros.shape == (50, at.L, at.L) and zeros.max() < at.q
        assert np.array_equal(zeros, out.sample(50, seed=3))
        assert (zeros == 0).mean() > (uniform == 0).mean()  # one sweep from all-0 leaves most sites at 0


def test_the_nonequilibrium_table_reports_each_gap_and_its_recovery(tmp_path):
    report = run_ising_nonequilibrium(Settings(out=tmp_path, quick=True, verbose=False))
    assert report.results["start"] == "fixed" and report.results["sweeps"] == 1
    assert report.table.columns == ["AR base", "AR flow", "flow - base", "AR base, 2 stages", "flow - base, 2 stages",
                                    "moved %", "exact entropy", "base gap", "gap recovered %"]
    for (L, J), (label, row) in zip(ISING, report.results["rows"].items()):
        assert math.isclose(row["entropy"], ising_one_sweep_entropy(L, J))
        assert math.isclose(row["base gap"], row["AR base"] - row["entropy"])
        assert row["gap recovered"] == gap_recovered(row, row["entropy"])
        cells = next(r for r in report.table.rows if r[0] == label)
        shown = cells[-1]["ours"]
        assert (shown is None) == (row["gap recovered"] is None)
        assert shown is None or math.isclose(shown, 100 * row["gap recovered"], abs_tol=1e-12)
