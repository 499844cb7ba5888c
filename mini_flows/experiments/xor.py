"""The XOR example of Tran et al. (2019), section 3.2: a flow captures what a factorized base cannot.

The data distribution over two bits,

              x2 = 0   x2 = 1
    x1 = 0     0.63     0.07
    x1 = 1     0.03     0.27

is not a product p(x1) p(x2), but it is the image of the product base [0.7, 0.3] x [0.9, 0.1]
under the flow f(x1, x2) = (x1, x1 xor x2). ``xor_model`` builds that flow by hand: a
``DiscreteBipartiteFlow`` with K = 2 that keeps x1 and shifts x2 by mu = x1 (XOR is addition mod
2), its MLP set to output one_hot(x1) as the location logits of position 2. The experiment prints
the tables of the base and of the flow model (``DiscreteFlowModel.log_prob``, the inverse
direction), then learns both models from samples of the data table: a factorized base alone
stops at H(x1) + H(x2), one learnt bipartite flow reaches the table's entropy.
"""

from __future__ import annotations

import math
from typing import Any

from mini_flows import backend as B
from mini_flows.data import sample_table, table_entropy
from mini_flows.discrete import DiscreteBipartiteFlow, DiscreteFlowModel, FactorizedCategorical, MLPNet, build_model
from mini_flows.discrete.diagnostics import diagnostics_report
from mini_flows.discrete.flows import with_progress
from mini_flows.experiments.figures import save_figure, table_bars
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table, cell
from mini_flows.nn.tree import Tree, first_leaf
from mini_flows.optim import Adam
from mini_flows.train import fit, linear_decay

CONFIGS = [[0, 0], [0, 1], [1, 0], [1, 1]]
PAPER_TABLE = [[0.63, 0.07], [0.03, 0.27]]
BASE = [[0.7, 0.3], [0.9, 0.1]]


def xor_model() -> tuple[DiscreteFlowModel, Tree]:
    """(model, params): base [0.7, 0.3] x [0.9, 0.1] and the flow (x1, x2) -> (x1, x1 xor x2)."""
    net = MLPNet(length=2, vocab_size=2, hidden=2)
    model = DiscreteFlowModel(FactorizedCategorical(2, 2), [DiscreteBipartiteFlow(net, keep="even")])
    params = model.init(B.host_rng(0))
    params["base"]["logits"] = B.asarray([[math.log(p) for p in row] for row in BASE])
    # hidden unit k = relu(one_hot(x1)[k]) (inputs flattened as d * K + k; x2 is masked out) ...
    w_in = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    # ... and the location logits of position 2 (outputs 2 and 3) are one_hot(x1), so mu_2 = x1
    w_out = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    params["flow_0"]["network"] = {
        "hidden_0": {"W": B.asarray(w_in), "b": B.asarray([0.0, 0.0])},
        "head": {"W": B.asarray(w_out), "b": B.asarray([0.0] * 4)},
        "bias": B.asarray([[0.0, 0.0], [0.0, 0.0]]),
    }
    return model, params


def probability_table(log_p: Any) -> list[list[float]]:
    """log p over CONFIGS (4,) -> [[p(0, 0), p(0, 1)], [p(1, 0), p(1, 1)]]."""
    p = [math.exp(float(v)) for v in B.to_numpy(log_p)]
    return [p[:2], p[2:]]


def tables(model: DiscreteFlowModel, params: Tree) -> tuple[Any, Any]:
    """(base table, model table) as host arrays (2, 2) indexed [x1, x2]: the base's probabilities
    of the four configurations, and the flow model's."""
    xp = B.xp()
    configs = B.asarray(CONFIGS)
    base_x = (configs[..., None] == xp.arange(2)).astype(first_leaf(params).dtype)
    base_log_p = model.base.log_prob(params["base"], base_x)[0]
    log_p = model.log_prob(params, configs)
    return B.to_numpy(xp.exp(base_log_p).reshape(2, 2)), B.to_numpy(xp.exp(log_p).reshape(2, 2))


def format_table(title: str, p: Any) -> str:
    """A 2 x 2 probability table with a title, as the paper prints it."""
    rows = [title, "          x2 = 0  x2 = 1"]
    rows += [f"  x1 = {i}    {float(p[i][0]):.2f}    {float(p[i][1]):.2f}" for i in range(2)]
    return "\n".join(rows)


def run(settings: Settings) -> Report:
    """The hand-set flow's table against the paper's, then a factorized base and a learnt flow
    trained on samples of the table (exact NLL over the four outcomes)."""
    base_table, flow_table = tables(*xor_model())
    steps = settings.pick_steps(1000, 100)
    batch = 128
    data = B.asarray(sample_table(PAPER_TABLE, steps * batch, settings.seed))
    learnt = {
        "factorized base alone": build_model("bipartite", 2, 2, num_flows=0),
        "1 learnt flow + base": build_model("bipartite", 2, 2, num_flows=1, hidden=8, network="mlp",
                                            spread=settings.spread),
    }
    settings.clock.plan(len(learnt) * steps)
    learnt_tables, diagnostics = {}, {}
    for label, model in learnt.items():
        loss, batches = with_progress(model, lambda s: data[s * batch:(s + 1) * batch], steps)
        params, history = fit(loss, model.init(B.host_rng(settings.seed)), batches, steps,
                              Adam(lr=1e-2, clip_norm=5.0), linear_decay(1e-2, steps),
                              settings.progress(label, steps, unit="nats/seq"))
        settings.keep_model(label, model, params)
        if model.flows:
            diagnostics[label] = diagnostics_report(history)
        learnt_tables[label] = probability_table(model.log_prob(params, B.asarray(CONFIGS)))

    truth = [p for row in PAPER_TABLE for p in row]
    entropy = table_entropy(PAPER_TABLE)
    columns = ["data", "base [0.7,0.3]x[0.9,0.1]", "hand-set flow", *learnt]
    rows = []
    for i, (x1, x2) in enumerate(CONFIGS):
        rows.append([f"p(x1={x1}, x2={x2})", cell(truth[i], digits=2), cell(float(base_table[x1][x2]), digits=2),
                     cell(float(flow_table[x1][x2]), PAPER_TABLE[x1][x2], digits=2),
                     *(cell(t[x1][x2], digits=3) for t in learnt_tables.values())])

    def nll(table: Any) -> float:
        return -sum(p * math.log(float(table[x1][x2])) for p, (x1, x2) in zip(truth, CONFIGS))

    rows.append(["NLL of the data (nats)", cell(entropy), cell(nll(base_table)), cell(nll(flow_table)),
                 *(cell(nll(t)) for t in learnt_tables.values())])
    table = Table("Tran et al. 2019, section 3.2: XOR, a flow turns a factorized base into a correlated table",
                  columns, rows)
    factorized = table_entropy([0.7, 0.3]) + table_entropy([0.66, 0.34])
    notes = [f"the data's entropy is {entropy:.3f} nats; the best factorized model, p(x1) p(x2) = "
             f"[0.7, 0.3] x [0.66, 0.34], pays {factorized:.3f}: only a flow closes the gap",
             f"learnt models: {steps} Adam steps of {batch} samples each, exact NLL over the four outcomes"]
    results = {
        "entropy": entropy,
        "factorized_optimum": factorized,
        "hand_set": {"base": [[float(v) for v in r] for r in base_table],
                     "flow": [[float(v) for v in r] for r in flow_table]},
        "learnt": {label: {"table": t, "nll": nll(t)} for label, t in learnt_tables.items()},
        "steps": steps,
        "diagnostics": diagnostics,
    }
    report = Report(table, notes, results=results)
    save_figure(settings, "xor.png", table_bars(table, columns, "probability", rows=slice(0, 4)), report)
    return report
