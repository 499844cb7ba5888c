"""The paper's XOR example (section 3.2) through the library: the flow turns the factorized base
[0.7, 0.3] x [0.9, 0.1] into [[0.63, 0.07], [0.03, 0.27]]; examples/xor.py prints both tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from mini_flows import backend as B
from mini_flows.discrete import one_hot_add

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "xor.py"


def load_example():
    spec = importlib.util.spec_from_file_location("xor_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_flow_reproduces_the_paper_table():
    example = load_example()
    model, params = example.xor_model()
    base, flow = example.tables(model, params)
    np.testing.assert_allclose(base, [[0.63, 0.07], [0.27, 0.03]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(flow, [[0.63, 0.07], [0.03, 0.27]], rtol=0, atol=1e-15)
    y = B.to_numpy(model.flows[0].forward(params["flow_0"], B.asarray(np.eye(2)[example.CONFIGS]))[0])
    assert np.array_equal(y.argmax(-1), [[0, 0], [0, 1], [1, 1], [1, 0]])  # (x1, x1 xor x2)


def test_xor_is_one_hot_add_with_two_values():
    bits = B.asarray(np.eye(2))
    table = B.to_numpy(one_hot_add(bits[:, None], bits[None, :])).argmax(-1)
    assert np.array_equal(table, [[0, 1], [1, 0]])


def test_example_prints_both_tables(capsys):
    load_example().main()
    out = capsys.readouterr().out
    assert "x1 = 0    0.63    0.07\n  x1 = 1    0.27    0.03" in out
    assert "x1 = 0    0.63    0.07\n  x1 = 1    0.03    0.27" in out
