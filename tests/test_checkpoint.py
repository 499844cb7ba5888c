"""Checkpoints: bit-exact round trips and resumes, the configuration saved beside the parameters
and checked on load, all-or-nothing writes, and files of other models or no checkpoint refused
with their names."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from mini_flows.latent import LatentFlowModel, LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.optim import Adam
from tests.test_optim import host, tree_of


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_checkpoint_round_trip_is_bit_exact(tmp_path, dtype):
    params = tree_of(0, dtype)
    params["steps"] = B.asarray(np.arange(4, dtype=np.int32))
    adam = Adam(lr=3e-4, betas=(0.5, 0.9), eps=1e-7, clip_norm=0.25)
    trainable = {k: v for k, v in params.items() if k != "steps"}
    for seed in (1, 2):
        adam.step(trainable, tree_of(seed, dtype))
    save_checkpoint(tmp_path / "ckpt.npz", params, adam)
    restored, loaded = load_checkpoint(tmp_path / "ckpt.npz"), Adam()
    load_checkpoint(tmp_path / "ckpt.npz", loaded)
    before, after = host(params), host(restored)
    assert before.keys() == after.keys()
    for k in before:
        assert after[k].dtype == before[k].dtype and np.array_equal(after[k], before[k])
    assert (loaded.lr, loaded.betas, loaded.eps, loaded.clip_norm) == (3e-4, (0.5, 0.9), 1e-7, 0.25)
    assert loaded.state.keys() == adam.state.keys()
    for name, s in adam.state.items():
        assert loaded.state[name]["t"] == s["t"] == 2
        for moment in ("m", "v"):
            a, b = B.to_numpy(loaded.state[name][moment]), B.to_numpy(s[moment])
            assert a.dtype == b.dtype == np.dtype(dtype) and np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tmp_path, dtype):
    grads = [tree_of(seed, dtype) for seed in range(10, 16)]
    make = lambda: Adam(lr=0.01, clip_norm=1.0)  # noqa: E731
    params, adam = tree_of(0, dtype), make()
    for g in grads:
        adam.step(params, g)
    resumed, first = tree_of(0, dtype), make()
    for g in grads[:3]:
        first.step(resumed, g)
    save_checkpoint(tmp_path / "mid.npz", resumed, first)
    second = Adam(lr=0.5)
    resumed = load_checkpoint(tmp_path / "mid.npz", second)
    for g in grads[3:]:
        second.step(resumed, g)
    assert all(np.array_equal(a, host(resumed)[k]) for k, a in host(params).items())


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, tree_of(0))
    saved = path.read_bytes()

    class Unconvertible:
        shape, dtype = (2,), np.dtype("float64")

        def __array__(self, *args, **kwargs):
            raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        save_checkpoint(path, {**tree_of(1), "bad": Unconvertible()})

    def savez_that_dies(file, **arrays):
        file.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_that_dies)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tree_of(1))
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_a_checkpoint_of_another_model_is_refused_with_every_difference(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, tree_of(0))
    assert np.array_equal(host(load_checkpoint(path, like=tree_of(1)))["dense/W"], host(tree_of(0))["dense/W"])
    other = tree_of(1, "float32")
    other["dense"]["W"] = B.asarray(np.ones((4, 2)))
    del other["scale"]
    other["flow_1"] = {"b": B.asarray(np.ones(2))}
    with pytest.raises(ValueError, match=r"ckpt\.npz is a checkpoint of another model: missing flow_1/b; unexpected "
                                         r"scale; dense/W is float64 \(3, 2\), the model's float64 \(4, 2\); "
                                         r"dense/b is float64 \(2,\), the model's float32 \(2,\)"):
        load_checkpoint(path, like=other)


@pytest.mark.parametrize("content,reason", [
    (b"", "not a readable .npz"), (b"junk that is no zip", "not a readable .npz"), ("truncated", "not a readable .npz"),
    ("pickled", "pickled objects, which are never loaded"), ("single", "single array"), ("foreign", "no params/"),
])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, content, reason):
    path = tmp_path / "bad.npz"
    if content == "truncated":
        save_checkpoint(path, tree_of(0))
        path.write_bytes(path.read_bytes()[:200])
    elif content == "pickled":
        np.savez(open(path, "wb"), x=np.array([{"a": 1}], dtype=object))
    elif content == "single":
        np.save(open(path, "wb"), np.ones(3))
    elif content == "foreign":
        np.savez(open(path, "wb"), weights=np.ones(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"bad\.npz .*{reason}"):
        load_checkpoint(path)


CONFIG = {"kind": "bipartite", "vocab_size": 4, "length": 6, "hidden": 8, "sizes": (8, 8)}


def test_the_configuration_is_saved_beside_the_parameters_and_checked_on_load(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, tree_of(0), config=CONFIG)
    assert checkpoint_config(path) == {**CONFIG, "sizes": [8, 8]}  # JSON: tuples come back as lists
    loaded = load_checkpoint(path, like=tree_of(1), config=CONFIG)
    assert all(np.array_equal(a, host(tree_of(0))[name]) for name, a in host(loaded).items())
    with pytest.raises(ValueError, match=r"ckpt\.npz is a checkpoint of another model: its vocab_size is 4, the "
                                         r"model's is 5"):
        load_checkpoint(path, config={**CONFIG, "vocab_size": 5})
    with pytest.raises(ValueError, match=r"its network is None, the model's is 'mlp'"):
        load_checkpoint(path, config={**CONFIG, "network": "mlp"})


def test_a_checkpoint_without_a_configuration(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, tree_of(0))
    assert checkpoint_config(path) is None
    with pytest.raises(ValueError, match="holds no configuration to check; it was saved without config="):
        load_checkpoint(path, config=CONFIG)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        save_checkpoint(path, tree_of(0), config={"lr": float("nan")})


@pytest.mark.parametrize("first, second", [("dense", "dense/W"), ("dense/W", "dense")])
def test_parameter_names_that_clash_are_refused_in_either_order(tmp_path, first, second):
    """Issue 24: "params/a" then "params/a/b" gave IndexError; the other order dropped "a/b"."""
    path = tmp_path / "ckpt.npz"
    np.savez(open(path, "wb"), **{f"params/{first}": np.ones(2), f"params/{second}": np.zeros(2)})
    with pytest.raises(ValueError, match=r"ckpt\.npz is not a usable checkpoint: parameter names clash: 'dense' is an "
                                         r"array and the group holding 'dense/W'"):
        load_checkpoint(path)


def saved_with_adam(path) -> dict[str, np.ndarray]:
    """Save tree_of(0) with an Adam that has taken a step at ``path``; return the file's arrays."""
    params, adam = tree_of(0), Adam(lr=0.01, clip_norm=1.0)
    adam.step(params, tree_of(1))
    save_checkpoint(path, params, adam, config=CONFIG)
    with np.load(path) as data:
        return dict(data)


def rewrite(path, arrays, **changes) -> None:
    """Write ``arrays`` to ``path`` with ``changes`` (key "adam__lr" is "adam/lr"; None removes it)."""
    arrays = dict(arrays)
    for key, value in changes.items():
        if value is None:
            del arrays[key.replace("__", "/")]
        else:
            arrays[key.replace("__", "/")] = np.asarray(value)
    np.savez(open(path, "wb"), **arrays)


@pytest.mark.parametrize("text, kind", [(b"[1, 2]", "list"), (b"3", "int"), (b'"bipartite"', "str"),
                                        (b"null", "NoneType")])
def test_a_configuration_that_is_json_but_not_an_object_is_refused(tmp_path, text, kind):
    """Issue 24: it gave AttributeError on load, and checkpoint_config returned it as it was."""
    path = tmp_path / "ckpt.npz"
    rewrite(path, saved_with_adam(path), config=np.frombuffer(text, dtype=np.uint8))
    message = rf"ckpt\.npz holds a configuration that is a JSON {kind}, not an object"
    with pytest.raises(ValueError, match=message):
        checkpoint_config(path)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, config=CONFIG)


def test_a_configuration_nested_too_deep_for_json_is_refused(tmp_path):
    path = tmp_path / "ckpt.npz"
    rewrite(path, saved_with_adam(path), config=np.frombuffer(b"[" * 100_000 + b"]" * 100_000, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"ckpt\.npz holds a configuration that is not JSON: maximum recursion depth"):
        checkpoint_config(path)


@pytest.mark.parametrize("removed, named", [
    ("adam__eps", "the Adam state lacks 'eps'"), ("adam__betas", "the Adam state lacks 'betas'"),
    ("adam__v__dense/W", "the Adam state lacks 'v/dense/W'"), ("adam__t__scale", "the Adam state lacks 't/scale'"),
])
def test_an_optimizer_state_missing_an_entry_is_refused_naming_it(tmp_path, removed, named):
    """Issue 24: "adam/lr" without "adam/eps" gave KeyError."""
    path = tmp_path / "ckpt.npz"
    rewrite(path, saved_with_adam(path), **{removed: None})
    with pytest.raises(ValueError, match=rf"ckpt\.npz holds an unusable optimizer state: {named}$"):
        load_checkpoint(path, Adam())


@pytest.mark.parametrize("change, reason", [
    ({"adam__lr": -5.0}, r"lr must be a finite number > 0, got -5\.0"),
    ({"adam__lr": np.inf}, r"lr must be a finite number > 0, got inf"),
    ({"adam__eps": 0.0}, r"eps must be a finite number > 0, got 0\.0"),
    ({"adam__betas": [0.9, 1.5]}, r"betas must be two numbers in \[0, 1\), got \(0\.9, 1\.5\)"),
    ({"adam__clip_norm": np.nan}, r"clip_norm must be a finite number > 0, got nan"),
    ({"adam__lr": [0.1, 0.2]}, r"the Adam state's 'lr' is float64 \(2,\), not a number"),
    ({"adam__betas": [True, False]}, r"the Adam state's 'betas' is bool \(2,\), not two numbers"),
    ({"adam__t__scale": -1}, r"the Adam state's 't/scale' is -1, not a step count \(an integer >= 0\)"),
    ({"adam__t__scale": 1.5}, r"the Adam state's 't/scale' is 1\.5, not a step count"),
    ({"adam__m__scale": np.nan}, r"the Adam state's 'm/scale' holds NaN or infinity$"),
    ({"adam__v__scale": -1.0}, r"the Adam state's 'v/scale' holds NaN, infinity or negative values"),
    ({"adam__m__scale": np.zeros(2)},
     r"the Adam state's 'm/scale' is float64 \(2,\) and params\['scale'\] float64 \(\); the moments have"),
    ({"adam__m__nothing": 0.0}, r"the Adam state lacks 'v/nothing' and 't/nothing'"),
    ({"adam__m__nothing": 0.0, "adam__v__nothing": 0.0, "adam__t__nothing": 1},
     r"the Adam state has moments for 'nothing', which is not a parameter"),
    ({"adam__momentum": 0.9}, r"the Adam state's 'momentum' is not an entry Adam writes"),
])
def test_saved_adam_hyperparameters_and_moments_are_checked_before_the_optimizer_changes(tmp_path, change, reason):
    """Issue 24: lr -5, eps 0 or a beta of 1.5 loaded, and the next step wrote NaN."""
    path = tmp_path / "ckpt.npz"
    rewrite(path, saved_with_adam(path), **change)
    adam = Adam(lr=0.5)
    with pytest.raises(ValueError, match=rf"ckpt\.npz holds an unusable optimizer state: {reason}"):
        load_checkpoint(path, adam)
    assert (adam.lr, adam.betas, adam.eps, adam.clip_norm, adam.state) == (0.5, (0.9, 0.999), 1e-8, None, {})


def test_saving_to_a_folder_says_to_name_a_file(tmp_path, monkeypatch):
    """Issue 24: save_checkpoint('.') said "Device or resource busy" and left a .partial file
    in the folder above."""
    monkeypatch.chdir(tmp_path / ".")
    (tmp_path / "run").mkdir()
    for folder in (".", "run", str(tmp_path / "run")):
        with pytest.raises(IsADirectoryError, match=rf"^'{folder}' is a folder; name a file$"):
            save_checkpoint(folder, tree_of(0))
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and not any((tmp_path / "run").iterdir())
    assert not any(p.name.startswith(".partial-") for p in tmp_path.parent.iterdir())


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """A .npy version 1.0 header, whatever the shape claims."""
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def huge_claim(path) -> None:
    """A 200-byte .npz whose array claims 8 TiB: NumPy's MemoryError escaped."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("params/a.npy", npy_header("<f8", (2**40,)) + bytes(16))


def bad_deflate(path) -> None:
    """A compressed .npz whose data starts with deflate's reserved block type: zlib.error escaped."""
    np.savez_compressed(open(path, "wb"), **{"params/a": np.ones(100)})
    data = bytearray(path.read_bytes())
    member = zipfile.ZipFile(path).infolist()[0]
    extra = int.from_bytes(data[member.header_offset + 28:member.header_offset + 30], "little")
    data[member.header_offset + 30 + len(member.filename) + extra] = 0b111
    path.write_bytes(bytes(data))


def records(path) -> None:
    """Parameters of a structured dtype: they loaded, though no model has such parameters."""
    np.savez(open(path, "wb"), **{"params/a": np.zeros(2, dtype=[("x", "<i4"), ("y", "<f8")])})


@pytest.mark.parametrize("write, reason", [
    (huge_claim, r"Unable to allocate 8\.00 TiB"),
    (bad_deflate, "Error -3 while decompressing data: invalid block type"),
    (records, r"params/a holds \[\('x', '<i4'\), \('y', '<f8'\)\], not booleans or numbers"),
])
def test_a_damaged_npz_or_one_of_records_raises_value_error(tmp_path, write, reason):
    path = tmp_path / "bad.npz"
    write(path)
    with pytest.raises(ValueError, match=rf"bad\.npz is not a readable \.npz of arrays: {reason}"):
        load_checkpoint(path)


def test_a_damaged_file_is_refused_in_one_line_whatever_its_names_and_values_hold(tmp_path):
    """Found by fuzzing: an entry named "\\n" and a configuration key with a newline made
    two-line messages, and a long value an endless one."""
    path = tmp_path / "ckpt.npz"
    np.savez(open(path, "wb"), **{"params/a": np.ones(2), "\n": np.ones(2)})
    with pytest.raises(ValueError, match=r"ckpt\.npz is not a readable \.npz of arrays: the name '\\n' holds "
                                         r"characters that do not print$"):
        load_checkpoint(path)
    config = json.dumps({"kind\nx": 1, "vocab_size": list(range(1000))}).encode()
    np.savez(open(path, "wb"), **{"params/a": np.ones(2), "config": np.frombuffer(config, dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"checkpoint of another model: its 'kind\\nx' is 1, the model's is None$"):
        load_checkpoint(path, config={"vocab_size": 4})
    with pytest.raises(ValueError, match=r"its vocab_size is \[0, 1, 2, 3, 4, 5, \.\.\.\], the model's is 4$"):
        load_checkpoint(path, config={"kind\nx": 1, "vocab_size": 4})


def test_a_configuration_of_another_sequence_model_is_refused_by_from_config(tmp_path):
    """Issue 24: a latent model's configuration given to LSTMBaseline.from_config gave TypeError."""
    latent = LatentFlowModel(LatentConfig(5, 4, latent_dim=2, embed_size=3, hidden_size=3, flow_hidden_sizes=(3,)))
    baseline = LSTMBaseline(BaselineConfig(5, 4, embed_size=3, hidden_size=3))
    path = tmp_path / "latent.npz"
    save_checkpoint(path, latent.init(B.host_rng(0)), config=latent.config)
    with pytest.raises(ValueError, match="a checkpoint of another model: a BaselineConfig has no activation, "
                                         "flow_hidden_sizes, flow_layers, latent_dim, prior, prior_lstm_size, "
                                         "transform$"):
        LSTMBaseline.from_config(checkpoint_config(path))
    with pytest.raises(ValueError, match="a checkpoint of another model: a LatentConfig has no dropout, tie_weights$"):
        LatentFlowModel.from_config(baseline.config)
    with pytest.raises(ValueError, match="its configuration lacks vocab_size, max_length, which a BaselineConfig needs"):
        LSTMBaseline.from_config({"length_counts": [1]})
