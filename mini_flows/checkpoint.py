"""Checkpoints: a model's parameters, the configuration that rebuilds the model and, optionally,
the optimiser's state, in one uncompressed ``.npz`` file, bit for bit.

    save_checkpoint(path, params, optimizer=None, config=model.config)
    config = checkpoint_config(path)          # e.g. build_model(**config) rebuilds the model
    params = load_checkpoint(path, optimizer=None, like=model.init(...), config=model.config)

The file holds "params/NAME" arrays (flattened names, "flow_0/network/head/W"), "adam/..." for
the optimiser and "config", the configuration as UTF-8 JSON bytes. Loading checks what it is
given before anything is used: ``config`` must equal the saved one (ValueError naming the first
differing key and both values), ``like`` must match every parameter's name, shape and dtype
(ValueError naming each difference), so a checkpoint of another model fails here, not steps later.
A damaged or hand-edited file fails here too, with a ValueError naming it and what is wrong:
parameter names that clash ("a" and "a/b"), a configuration that is not a JSON object, an
optimizer state that Adam could not resume from (an entry missing, lr <= 0, NaN moments...).
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.nn.tree import Tree, flatten, unflatten
from mini_flows.optim import Adam

CONFIG = "config"


def save_checkpoint(path: Any, params: Tree, optimizer: Adam | None = None, config: dict[str, Any] | None = None) -> None:
    """Write params, and where given the optimizer's ``state_dict`` and ``config`` (a dict of
    JSON values, e.g. ``model.config``), to an uncompressed ``.npz`` file at exactly ``path``,
    all or nothing."""
    arrays = {f"params/{name}": a for name, a in flatten(params).items()}
    if optimizer is not None:
        arrays.update({f"adam/{key}": a for key, a in optimizer.state_dict().items()})
    if config is not None:
        text = json.dumps(config, sort_keys=True, allow_nan=False)
        arrays[CONFIG] = B.asarray(list(text.encode()), "uint8")
    B.save_npz(path, arrays)


def checkpoint_config(path: Any) -> dict[str, Any] | None:
    """The configuration saved with the checkpoint at ``path`` (None where it was saved without)."""
    return _config(path, _read(path))


def load_checkpoint(path: Any, optimizer: Adam | None = None, like: Tree | None = None,
                    config: dict[str, Any] | None = None) -> Tree:
    """Read a checkpoint written by ``save_checkpoint`` onto the current backend, dtypes kept.

    Returns the params tree; when ``optimizer`` is given its hyperparameters and state are
    replaced by the saved ones (ValueError if the file has none), so training resumes exactly.
    ``config``: the configuration of the model the checkpoint is meant for (``model.config``);
    it must equal the saved one. ``like``: a params tree of that model (``model.init(...)``);
    every name, shape and dtype must match it. A file that is not a checkpoint, or a damaged one
    (see the module docstring), raises ValueError naming it; the optimizer is changed only once
    its whole saved state has been checked.
    """
    arrays = _read(path)
    if config is not None:
        _check_config(path, _config(path, arrays), config)
    flat = {key.removeprefix("params/"): a for key, a in arrays.items() if key.startswith("params/")}
    if like is not None:
        _check_like(path, flat, flatten(like))
    try:
        params = unflatten(flat)
    except ValueError as err:
        raise ValueError(f"{path} is not a usable checkpoint: {err}") from None
    if optimizer is not None:
        state = {key.removeprefix("adam/"): a for key, a in arrays.items() if key.startswith("adam/")}
        if not state:
            raise ValueError(f"{path} holds no optimizer state; it was saved without an optimizer")
        try:
            optimizer.load_state_dict(state, params)
        except ValueError as err:
            raise ValueError(f"{path} holds an unusable optimizer state: {err}") from None
    return params


def _read(path: Any) -> dict[str, Array]:
    arrays = B.load_npz(path)
    if not any(key.startswith("params/") for key in arrays):
        raise ValueError(f"{path} is not a mini_flows checkpoint: it holds no params/ arrays")
    return arrays


def _config(path: Any, arrays: dict[str, Array]) -> dict[str, Any] | None:
    if CONFIG not in arrays:
        return None
    try:
        config = json.loads(B.to_numpy(arrays[CONFIG]).tobytes().decode())
    except (ValueError, RecursionError) as err:  # bytes that are not UTF-8 or not JSON; JSON nested too deep
        raise ValueError(f"{path} holds a configuration that is not JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a configuration that is a JSON {type(config).__name__}, not an object")
    return config


def _check_config(path: Any, saved: dict[str, Any] | None, wanted: dict[str, Any]) -> None:
    """ValueError naming the first key whose value differs (JSON-normalised: tuples as lists), in
    one line of bounded length whatever the file holds (a key with a newline is shown quoted, a
    value as ``reprlib`` abbreviates it)."""
    if saved is None:
        raise ValueError(f"{path} holds no configuration to check; it was saved without config=")
    wanted = json.loads(json.dumps(wanted, sort_keys=True, allow_nan=False))
    for key in sorted(saved.keys() | wanted.keys()):
        if saved.get(key) != wanted.get(key):
            shown = key if key.isprintable() else repr(key)
            raise ValueError(f"{path} is a checkpoint of another model: its {shown} is "
                             f"{reprlib.repr(saved.get(key))}, the model's is {reprlib.repr(wanted.get(key))}")


def _check_like(path: Any, saved: dict[str, Array], wanted: dict[str, Array]) -> None:
    """ValueError listing every name missing, unexpected, or of another shape or dtype."""
    problems = [f"missing {name}" for name in sorted(wanted.keys() - saved.keys())]
    problems += [f"unexpected {name}" for name in sorted(saved.keys() - wanted.keys())]
    for name in sorted(wanted.keys() & saved.keys()):
        a, b = saved[name], wanted[name]
        if tuple(a.shape) != tuple(b.shape) or a.dtype != B.value(b).dtype:
            problems.append(f"{name} is {a.dtype} {tuple(a.shape)}, the model's {B.value(b).dtype} {tuple(b.shape)}")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ValueError(f"{path} is a checkpoint of another model: {shown}")
