"""Adam and global-norm clipping: textbook steps, exact clipping, errors that change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from mini_flows import backend as B
from mini_flows.nn.tree import flatten, tree_map
from mini_flows.checkpoint import load_checkpoint, save_checkpoint
from mini_flows.optim import Adam, TrainingDiverged, check_hyperparameters, clip_global_norm, global_norm
from mini_flows.train import fit

seeds = st.integers(0, 2**32 - 1)

def tree_of(seed, dtype="float64"):
    """A small nested parameter tree of mixed shapes, on the current backend."""
    rng = B.host_rng(seed)
    arr = lambda *shape: B.asarray(rng.standard_normal(shape), dtype)  # noqa: E731
    return {"dense": {"W": arr(3, 2), "b": arr(2)}, "scale": arr(), "lstm": {"layer_0": {"W": arr(2, 4)}}}


def host(tree):
    return {name: B.to_numpy(a).copy() for name, a in flatten(tree).items()}


def test_adam_matches_textbook_steps():
    lr, (b1, b2), eps = 0.01, (0.8, 0.95), 1e-6
    rng = B.host_rng(3)
    theta = rng.standard_normal(5)
    grads = [rng.standard_normal(5) * s for s in (1.0, 0.1, 3.0, 1e-3)]
    params, adam = {"theta": B.asarray(theta.copy())}, Adam(lr, (b1, b2), eps)
    m, v = np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        norm = adam.step(params, {"theta": B.asarray(g)})
        assert norm == pytest.approx(np.linalg.norm(g), rel=1e-14)
        np.testing.assert_allclose(B.to_numpy(params["theta"]), theta, rtol=1e-15, atol=0)
    assert adam.state["theta"]["t"] == len(grads)


def test_first_adam_step_moves_each_parameter_by_lr():
    # m^_1 / sqrt(v^_1) = g / |g|: the first update is lr * sign(g), whatever the gradient scale
    params = {"w": B.asarray([1.0, 2.0, 3.0])}
    Adam(lr=0.1, eps=1e-12).step(params, {"w": B.asarray([1e-3, -5.0, 200.0])})
    np.testing.assert_allclose(B.to_numpy(params["w"]), [0.9, 2.1, 2.9], rtol=1e-8)


def test_adam_minimises_an_ill_conditioned_quadratic():
    # f(w) = 1/2 sum a_i (w_i - c_i)^2 with curvatures spanning four orders of magnitude
    a, c = np.array([1e-2, 1.0, 1e2]), np.array([1.0, -2.0, 0.5])
    params, adam = {"w": B.asarray(np.zeros(3))}, Adam(lr=0.05)
    for _ in range(2000):
        adam.step(params, {"w": B.asarray(a * (B.to_numpy(params["w"]) - c))})
    np.testing.assert_allclose(B.to_numpy(params["w"]), c, atol=1e-3)


trees = st.recursive(
    st.lists(st.integers(0, 3), max_size=3).map(tuple),
    lambda children: st.dictionaries(st.sampled_from("abcd"), children, min_size=1, max_size=3),
    max_leaves=6,
).filter(lambda t: isinstance(t, dict))


@given(trees, seeds, st.floats(-6, 6), st.floats(1e-3, 10.0), st.sampled_from(["float32", "float64"]))
def test_clipping_scales_the_global_norm_to_max_norm(shapes, seed, log_scale, max_norm, dtype):
    rng = B.host_rng(seed)
    grads = tree_map(lambda shape: B.asarray(rng.standard_normal(shape) * np.exp(log_scale), dtype), shapes)
    flat = host(grads)
    expected = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in flat.values()))
    clipped, norm = clip_global_norm(grads, max_norm)
    note(f"norm {norm!r}, expected {expected!r}, max_norm {max_norm!r}")
    assert norm == pytest.approx(expected, rel=1e-12, abs=0)
    out = host(clipped)
    assert out.keys() == flat.keys() and all(out[k].dtype == np.dtype(dtype) for k in out)
    if norm <= max_norm:
        assert all(np.array_equal(out[k], flat[k]) for k in flat)
    else:
        tol = 1e-6 if dtype == "float32" else 1e-14
        assert global_norm(clipped) == pytest.approx(max_norm, rel=tol)
        for k in flat:
            np.testing.assert_allclose(out[k], flat[k] * (max_norm / norm), rtol=tol)


def test_adam_clips_before_its_step_and_returns_the_norm_before_clipping():
    grads = [tree_map(lambda a, s=s: a * s, tree_of(1)) for s in (3.0, 0.01, 7.0)]
    clipped_params, plain_params = tree_of(0), tree_of(0)
    clipping, plain = Adam(lr=0.01, clip_norm=0.25), Adam(lr=0.01)
    for g in grads:
        norm = clipping.step(clipped_params, g)
        assert norm == global_norm(g)
        plain.step(plain_params, clip_global_norm(g, 0.25)[0])
    assert all(np.array_equal(a, host(plain_params)[k]) for k, a in host(clipped_params).items())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_raises_naming_it_and_changes_nothing(bad):
    params, adam = tree_of(0), Adam(clip_norm=1.0)
    adam.step(params, tree_of(1))
    grads = tree_of(2)
    grads["lstm"]["layer_0"]["W"][1, 2] = bad
    before = host(params)
    state = {k: (s["t"], B.to_numpy(s["m"]).copy(), B.to_numpy(s["v"]).copy()) for k, s in adam.state.items()}
    with pytest.raises(ValueError, match=r"grads\['lstm/layer_0/W'\] contains NaN or infinity"):
        adam.step(params, grads)
    with pytest.raises(ValueError, match="lstm/layer_0/W"):
        clip_global_norm(grads, 1.0)
    assert all(np.array_equal(a, host(params)[k]) for k, a in before.items())
    for k, (t, m, v) in state.items():
        assert adam.state[k]["t"] == t == 1
        assert np.array_equal(B.to_numpy(adam.state[k]["m"]), m) and np.array_equal(B.to_numpy(adam.state[k]["v"]), v)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_enormous_finite_gradients_raise():
    with pytest.raises(ValueError, match="overflows"):
        global_norm({"w": B.asarray([1e200, 1e200])})


def test_mismatched_gradient_trees_raise():
    adam = Adam()
    missing = tree_of(1)
    del missing["dense"]["b"]
    with pytest.raises(ValueError, match=r"missing gradients for \['dense/b'\]"):
        adam.step(tree_of(0), missing)
    with pytest.raises(ValueError, match=r"without a parameter \['extra'\]"):
        adam.step(tree_of(0), tree_of(1) | {"extra": B.asarray(np.ones(2))})
    wrong_shape = tree_of(1)
    wrong_shape["dense"]["b"] = B.asarray(np.ones(3))
    with pytest.raises(ValueError, match=r"grads\['dense/b'\] must have shape \(2,\), got \(3,\)"):
        adam.step(tree_of(0), wrong_shape)
    with pytest.raises(TypeError, match="parameters are float64"):
        adam.step(tree_of(0), tree_of(1, "float32"))
    with pytest.raises(TypeError, match=r"params\['w'\] must be a float32 or float64"):
        adam.step({"w": B.asarray(np.ones(2, dtype=np.int64))}, {"w": B.asarray(np.ones(2))})


def test_state_of_other_parameters_raises():
    adam = Adam()
    adam.step({"w": B.asarray(np.ones(3))}, {"w": B.asarray(np.ones(3))})
    with pytest.raises(ValueError, match="optimizer state for 'w'"):
        adam.step({"w": B.asarray(np.ones(4))}, {"w": B.asarray(np.ones(4))})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr=0.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(eps=-1e-8), "eps"),
        (dict(eps=0.0), "eps"),
        (dict(eps=float("inf")), "eps"),
        (dict(lr=-1e-3), "lr"),
        (dict(lr=float("inf")), "lr"),
        (dict(betas=0.9), "betas"),
        (dict(betas=(0.9, float("nan"))), "betas"),
        (dict(betas=(0.9, 1.0)), "betas"),
        (dict(betas=(0.9,)), "betas"),
        (dict(clip_norm=0.0), "clip_norm"),
        (dict(clip_norm=True), "clip_norm"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(**kwargs)


def test_bad_max_norm_and_missing_optimizer_state_raise(tmp_path):
    with pytest.raises(ValueError, match="max_norm"):
        clip_global_norm(tree_of(0), -1.0)
    save_checkpoint(tmp_path / "params_only.npz", tree_of(0))
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "params_only.npz", Adam())


def test_a_failing_step_changes_nothing_even_when_a_later_parameter_is_read_only():
    if B.get_backend() != "numpy":
        pytest.skip("read-only arrays are a NumPy notion; CuPy arrays are always writeable")
    params, adam = tree_of(0), Adam()
    adam.step(params, tree_of(1))
    names = sorted(flatten(params))
    last = names[-1]
    leaf = params
    for part in last.split("/")[:-1]:
        leaf = leaf[part]
    leaf[last.split("/")[-1]].flags.writeable = False
    before = host(params)
    state = {k: (s["t"], B.to_numpy(s["m"]).copy()) for k, s in adam.state.items()}
    with pytest.raises(ValueError, match=rf"params\['{last}'\] is read-only"):
        adam.step(params, tree_of(2))
    assert all(np.array_equal(a, host(params)[k]) for k, a in before.items())
    assert all(adam.state[k]["t"] == t and np.array_equal(B.to_numpy(adam.state[k]["m"]), m) for k, (t, m) in state.items())



@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
@pytest.mark.parametrize("dtype,p,g,kwargs,match", [
    ("float64", [1e308], [-1.0], dict(lr=1e308), r"new value of params\['w'\] NaN or infinite \(lr 1e\+308, eps 1e-08\)"),
    ("float32", [1.0, 2.0], [0.0, 1.0], dict(eps=1e-50), r"new value of params\['w'\] .*eps 1e-50, which is 0 in float32"),
    ("float32", [1.0, 2.0], [1e20, 1.0], dict(), r"second moment of params\['w'\] NaN or infinite"),
])
def test_a_step_that_would_write_nan_or_infinity_raises_and_changes_nothing(dtype, p, g, kwargs, match):
    """Issue 24, item 9: a huge lr, or an eps that float32 rounds to 0 (0 / 0 where a gradient is
    0), wrote NaN or infinity into the parameters without a word; a float32 gradient of 1e20
    (finite, but its square is not) froze the parameter with v = inf."""
    params, adam = {"w": B.asarray(p, dtype)}, Adam(**kwargs)
    with pytest.raises(ValueError, match="Adam's step would make the " + match + ".*params and optimizer state are "
                                         "unchanged"):
        adam.step(params, {"w": B.asarray(g, dtype)})
    assert B.to_numpy(params["w"]).tolist() == p and adam.state == {}


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_training_at_an_overflowing_learning_rate_reports_divergence_at_its_step():
    params = {"w": B.asarray([1e308])}
    with pytest.raises(TrainingDiverged, match=r"diverged at step 1: Adam's step would make the new value of "
                                               r"params\['w'\] NaN or infinite"):
        fit(lambda p, batch: (1.0, {"w": B.asarray([-1.0])}), params, lambda step: None, 3, Adam(lr=1e308))
    assert B.to_numpy(params["w"]).tolist() == [1e308]


def test_hyperparameters_set_after_construction_are_checked_before_a_step():
    params, adam = tree_of(0), Adam()
    before = host(params)
    adam.lr = -0.1
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -0.1"):
        adam.step(params, tree_of(1))
    assert all(np.array_equal(a, host(params)[k]) for k, a in before.items()) and adam.state == {}


def test_check_hyperparameters_returns_python_floats():
    got = check_hyperparameters(np.float32(0.5), np.array([0.5, 0.25]), np.float64(1e-8), np.int64(2))
    assert got == (0.5, (0.5, 0.25), 1e-8, 2.0) and type(got[0]) is float and type(got[3]) is float


@pytest.mark.parametrize("key,value,match", [
    ("lr", -5.0, "lr must be a finite number > 0, got -5.0"),
    ("eps", 0.0, "eps must be a finite number > 0, got 0.0"),
    ("betas", [0.9, 1.5], r"betas must be two numbers in \[0, 1\)"),
    ("betas", 0.9, r"the Adam state's 'betas' is float64 \(\), not two numbers"),
    ("clip_norm", float("nan"), "clip_norm must be a finite number > 0"),
    ("lr", [1e-3, 1e-3], r"the Adam state's 'lr' is float64 \(2,\), not a number"),
    ("eps", None, "the Adam state lacks 'eps'"),
])
def test_loaded_hyperparameters_are_checked_and_a_bad_one_changes_nothing(key, value, match):
    """Issue 24, item 8 (the optimizer's part): lr -5, eps 0 or a beta of 1.5 loaded, and the next
    step wrote NaN; a state without eps raised KeyError."""
    params, adam = tree_of(0), Adam(lr=0.01, clip_norm=1.0)
    adam.step(params, tree_of(1))
    arrays = adam.state_dict()
    if value is None:
        del arrays[key]
    else:
        arrays[key] = B.asarray(np.asarray(value, dtype=float))
    fresh = Adam(lr=0.5)
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(arrays)
    assert (fresh.lr, fresh.betas, fresh.eps, fresh.clip_norm, fresh.state) == (0.5, (0.9, 0.999), 1e-8, None, {})


def stepped_state() -> tuple[dict, dict]:
    """tree_of(0) after one step of Adam(lr=0.01, clip_norm=1.0), and that Adam's state_dict."""
    params, adam = tree_of(0), Adam(lr=0.01, clip_norm=1.0)
    adam.step(params, tree_of(1))
    return params, adam.state_dict()


@pytest.mark.parametrize("change, match", [
    ({"t/scale": [1, 2]}, r"the Adam state's 't/scale' is int64 \(2,\), not a step count"),
    ({"t/scale": 1.5}, r"the Adam state's 't/scale' is 1\.5, not a step count \(an integer >= 0\)"),
    ({"t/scale": -1}, r"the Adam state's 't/scale' is -1, not a step count"),
    ({"m/scale": np.nan}, r"the Adam state's 'm/scale' holds NaN or infinity$"),
    ({"v/dense/b": [0.0, -1.0]}, r"the Adam state's 'v/dense/b' holds NaN, infinity or negative values$"),
    ({"v/scale": np.float32(0.0)},
     r"the Adam state's 'v/scale' is float32 \(\) and 'm/scale' float64 \(\); the moments have the parameter's"),
    ({"m/scale": 0}, r"the Adam state's 'm/scale' is int64 \(\), not a float array$"),
    ({"v/other": 0.0}, r"the Adam state lacks 'm/other' and 't/other'$"),
    ({"momentum": 0.9}, r"the Adam state's 'momentum' is not an entry Adam writes$"),
])
def test_a_loaded_state_is_checked_in_full_and_a_bad_one_changes_nothing(change, match):
    """Issue 24, items 8/9: load_state_dict took a step count of 1.5 as 1, NaN or negative moments
    and a "v/" entry without its "m/", and a step count of shape (2,) raised TypeError after the
    hyperparameters had been replaced (the optimizer half-loaded)."""
    _, arrays = stepped_state()
    arrays.update({key: B.asarray(np.asarray(value)) for key, value in change.items()})
    fresh = Adam(lr=0.5)
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(arrays)
    assert (fresh.lr, fresh.betas, fresh.eps, fresh.clip_norm, fresh.state) == (0.5, (0.9, 0.999), 1e-8, None, {})


def test_a_loaded_state_must_fit_the_params_it_is_given():
    params, arrays = stepped_state()
    fresh = Adam(lr=0.5)
    with pytest.raises(ValueError, match=r"the Adam state's 'm/dense/W' is float64 \(3, 2\) and "
                                         r"params\['dense/W'\] float32 \(3, 2\); the moments have"):
        fresh.load_state_dict(arrays, tree_map(lambda p: p.astype("float32"), params))
    with pytest.raises(ValueError, match=r"the Adam state has moments for 'scale', which is not a parameter$"):
        fresh.load_state_dict(arrays, {name: p for name, p in params.items() if name != "scale"})
    assert (fresh.lr, fresh.state) == (0.5, {})
    fresh.load_state_dict(arrays, params)
    assert (fresh.lr, fresh.betas, fresh.eps, fresh.clip_norm) == (0.01, (0.9, 0.999), 1e-8, 1.0)
    assert {name: s["t"] for name, s in fresh.state.items()} == {name: 1 for name in flatten(params)}
