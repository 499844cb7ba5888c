"""The README's commands stay true (CI runs the README's test command verbatim) and every comment in
the snippets of the README and the guide is a claim checked here."""

from __future__ import annotations

import pathlib
import re

from mini_flows import backend as B
from mini_flows.cli import _parser

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return {name: next(b.strip() for b in blocks if f"# {name}" in b) for name in ("main job", "tests")}


def test_ci_runs_the_readme_test_command():
    test_command = _commands()["tests"].splitlines()[-1]
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_main_job_runs_an_installed_command_that_exists():
    main = _commands()["main job"]
    scripts = re.findall(r"^mini-flows = \"mini_flows.cli:main\"$", (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert scripts, "pyproject.toml must install the mini-flows command"
    subcommands = re.findall(r"mini-flows (\w+)", main)
    assert subcommands, main
    for sub in subcommands:
        assert _parser().parse_args([sub]).command == sub


def _snippets() -> list[str]:
    """The Python snippets of the front page and of the guide it links to."""
    pages = ("README.md", "docs/guide.md")
    return [code for page in pages for code in re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)]


def test_the_front_page_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def _comments(code: str) -> list[str]:
    return [line.split("  # ", 1)[1].strip() for line in code.splitlines() if "  # " in line]


def _run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own snippet
    return namespace


def _check_discrete(ns: dict) -> None:
    import itertools

    import numpy as np

    from mini_flows import backend as B

    model, params = ns["model"], ns["model_params"]
    assert B.to_numpy(model.log_prob(params, ns["tokens"])).shape == (2,)
    every = B.asarray(list(itertools.product(range(5), repeat=4)))
    assert abs(float(np.exp(B.to_numpy(model.log_prob(params, every))).sum()) - 1) < 1e-12


def _check_model_parameters(ns: dict) -> None:
    model = ns["model"]
    assert sorted(ns["model_params"]) == ["base", "flow_0", "flow_1"]
    assert all(isinstance(v, dict) for v in ns["model_params"].values())
    assert model.log_prob.__code__.co_varnames[1:3] == ("params", "tokens")
    assert model.sample.__code__.co_varnames[1] == model.loss_and_grads.__code__.co_varnames[1] == "params"


def _check_gradients(ns: dict) -> None:
    from mini_flows.nn.tree import flatten

    assert flatten(ns["grads"]).keys() == flatten(ns["model_params"]).keys() and ns["loss"] > 0


def _check_diagnostics(ns: dict) -> None:
    diagnostics = ns["diagnostics"]
    assert list(diagnostics) == [f"flow_{i}/{key}" for i in range(2)
                                 for key in ("grad", "margin_median", "margin_min", "moved", "varied")]
    assert all(0 <= diagnostics[f"flow_{i}/margin_min"] <= diagnostics[f"flow_{i}/margin_median"] for i in range(2))
    assert all(0 <= diagnostics[f"flow_{i}/moved"] <= 1 and diagnostics[f"flow_{i}/grad"] > 0 for i in range(2))


def _check_samples(ns: dict) -> None:
    import numpy as np

    from mini_flows import backend as B

    drawn = B.to_numpy(ns["model"].sample(ns["model_params"], 3, seed=1))
    assert drawn.shape == (3, 4) and np.issubdtype(drawn.dtype, np.integer) and drawn.min() >= 0 and drawn.max() < 5


def _check_nlsq_inverse(ns: dict) -> None:
    import numpy as np

    from mini_flows import backend as B

    eps, logdet, logdet_inv = (B.to_numpy(ns[name]) for name in ("eps", "logdet", "logdet_inv"))
    assert np.max(np.abs(eps - np.linspace(-3, 3, 7))) <= 1e-15
    assert np.max(np.abs(logdet_inv + logdet)) <= 1e-13


def _check_prior_sample(ns: dict) -> None:
    from mini_flows import backend as B

    z = B.to_numpy(ns["z"])
    assert z.shape == (4, 20, 8)
    for row, length in zip(z, B.to_numpy(ns["lengths"])):
        assert not row[length:].any() and row[:length].all()


def _check_prior_density(ns: dict) -> None:
    import numpy as np

    from mini_flows import backend as B

    log_p = B.to_numpy(ns["prior"].log_prob(ns["params"], ns["z"], ns["lengths"]))
    assert log_p.shape == (4,) and np.isfinite(log_p).all()


def _check_backends(ns: dict) -> None:
    from mini_flows import backend as B

    assert "cupy" in B.BACKENDS and "MINI_FLOWS_BACKEND" in (B.__doc__ or "")


def _check_parameters(ns: dict) -> None:
    from mini_flows import backend as B
    from mini_flows.nn.lstm import LSTM
    from mini_flows.nn.tree import flatten

    assert isinstance(ns["params"], dict) and all(isinstance(v, dict) for v in ns["params"].values())
    again = LSTM(input_size=3, hidden_size=8).init(B.host_rng(0))
    assert all((B.to_numpy(a) == B.to_numpy(flatten(again)[k])).all() for k, a in flatten(ns["params"]).items())


def _check_training_data(ns: dict) -> None:
    from mini_flows import backend as B

    data = B.to_numpy(ns["data"])
    assert data.shape == (5000, 3) and data.min() >= 0 and data.max() < 4


def _check_default_estimator(ns: dict) -> None:
    """The batches carry the fraction of training done; between steps no flow holds it."""
    assert ns["flow_batches"](150)[1] == 0.5
    assert all(flow.progress is None for flow in ns["flow"].flows)


def _check_restored_flow(ns: dict) -> None:
    import numpy as np
    import pytest

    from mini_flows import backend as B
    from mini_flows.checkpoint import load_checkpoint
    from mini_flows.nn.tree import flatten

    saved, restored = flatten(ns["flow_params"]), flatten(ns["same_params"])
    assert saved.keys() == restored.keys()
    assert all(np.array_equal(B.to_numpy(saved[k]), B.to_numpy(restored[k])) for k in saved)
    assert len(ns["history"]["loss"]) == 300 and {"grad_norm", "seconds"} <= set(ns["history"])
    with pytest.raises(ValueError, match="flow.npz is a checkpoint of another model: its vocab_size is 4, the "
                                         "model's is 5"):
        load_checkpoint("flow.npz", config={**ns["flow"].config, "vocab_size": 5})


def _check_rebuilt_latent(ns: dict) -> None:
    assert ns["same_latent"].config == ns["latent"].config
    assert ns["same_latent"].length_prior.counts == ns["latent"].length_prior.counts


def _check_restored_density(ns: dict) -> None:
    import numpy as np

    from mini_flows import backend as B

    log_p = B.to_numpy(ns["log_p"])
    assert log_p.shape == (1000,) and np.isfinite(log_p).all()
    assert np.array_equal(log_p, B.to_numpy(ns["density"].log_prob(ns["density_params"], ns["test_points"])))
    assert ns["same_density"].config == ns["density"].config


def _check_density_samples(ns: dict) -> None:
    import numpy as np

    from mini_flows import backend as B

    drawn = B.to_numpy(ns["drawn"])
    assert drawn.shape == (5, 2) and np.isfinite(drawn).all()
    assert np.array_equal(drawn, B.to_numpy(ns["density"].sample(ns["density_params"], 5, seed=4)))


def _check_latent_scores(ns: dict) -> None:
    import math

    scores = ns["scores"]
    assert scores["unit"] == "bits/char" and math.isfinite(scores["nll"]) and scores["sequences"] == 100


def _check_kit(ns: dict) -> None:
    import pytest

    from mini_flows import backend as B
    from mini_flows.testing import assert_bijection
    from tests.test_testing_kit import Planted

    flow, rng = ns["flow"], B.host_rng(0)
    params, x, context = flow.init(rng), B.asarray(rng.standard_normal((4, 3))), B.asarray(rng.standard_normal((4, 2)))
    assert flow.differentiable == ("forward", "inverse")
    assert_bijection(flow, params, x, context)
    for bug, check in (("inverse offset", "round trip"), ("logdet sign", "log-det against autograd's Jacobian"),
                       ("vjp factor", "VJP of forward against autograd")):
        with pytest.raises(AssertionError, match=f"^{check}"):
            assert_bijection(Planted(flow, bug), params, x, context)


def _check_normalized(ns: dict) -> None:
    import itertools

    import numpy as np

    from mini_flows import backend as B

    model = ns["model"]
    every = B.asarray(list(itertools.product(range(3), repeat=4)))
    assert abs(float(np.exp(B.to_numpy(model.log_prob(model.init(B.host_rng(0)), every))).sum()) - 1) <= 1e-9


COMMENT_CHECKS = {
    "a dict of dicts of arrays; every method takes it first": _check_model_parameters,
    "(2,) nats; summed over all 5^4 sequences, exp(log_prob) is 1": _check_discrete,
    "straight-through gradients, written by hand": _check_gradients,
    "per flow: gradient norm, location margins in units of tau, share relabelled": _check_diagnostics,
    "(3, 4) integer tokens": _check_samples,
    "eps back to within 1e-15; logdet_inv = -logdet to 1e-13": _check_nlsq_inverse,
    "(4, 20, 8), zeros at padding": _check_prior_sample,
    "(4,) nats": _check_prior_density,
    'or "cupy"; MINI_FLOWS_BACKEND sets the default': _check_backends,
    "nested dicts of arrays; the same values on every backend": _check_parameters,
    "(5000, 3) tokens in [0, 4)": _check_training_data,
    "the default estimator": _check_default_estimator,
    "bit for bit": _check_restored_flow,
    "p(T) included": _check_rebuilt_latent,
    "importance-sampled NLL, bits per character": _check_latent_scores,
    "(1000,) nats, the trained model's bit for bit": _check_restored_density,
    "(5, 2) points, as the trained model draws them": _check_density_samples,
    "round trips, log-det against autograd's Jacobian, both VJPs": _check_kit,
    "sum of p over all 3^4 sequences is 1 within 1e-9": _check_normalized,
}


def test_every_comment_in_the_readme_snippets_is_true(tmp_path, monkeypatch):
    """Each snippet runs as written (in a scratch folder: the training snippet writes checkpoints),
    and each of its comments is a claim checked here (a comment added to the README without a
    check fails this test). Snippets run on the tests' backend, but those that use the testing kit
    (it compares with autograd, which differentiates NumPy only) on NumPy; a snippet that sets the
    backend sets it for itself only."""
    monkeypatch.chdir(tmp_path)
    seen = []
    for code in _snippets():
        with B.use_backend("numpy" if "mini_flows.testing" in code else B.get_backend()):
            namespace = _run(code)
            for comment in _comments(code):
                assert comment in COMMENT_CHECKS, f"README comment without a check: {comment!r}"
                COMMENT_CHECKS[comment](namespace)
                seen.append(comment)
    assert sorted(seen) == sorted(COMMENT_CHECKS)
