"""The models a run keeps: every trained model's checkpoint under --out, listed in results.json, and
what ``mini-flows sample`` needs to rebuild a model and print its samples as the data reads.

An experiment calls ``settings.keep_model(label, model, params, decoder)`` where a model finishes
training; that writes ``OUT/models/NN-<label-slug>.npz`` (``checkpoint.save_checkpoint`` with the
model's ``config``; NN numbers the models in training order, so that no two labels share a file)
and adds an entry to results.json's "models" list:

    {"label": "1 learnt flow + base", "file": "models/02-1-learnt-flow-base.npz",
     "class": "DiscreteFlowModel", "decoder": {"kind": "text", "table": ["a", ...], "end": 8}}

"class" names the model's class in ``MODEL_CLASSES``, whose ``from_config`` rebuilds it from the
checkpoint's configuration. "decoder" says how a sample reads (absent: integers, or numbers):
``text_decoder`` (token i prints as table[i], a sequence cut at its first ``end`` token) or
``MUSIC`` (a piano roll (T, 88) of 0/1 as the MIDI notes sounding at each step,
``data.piano.roll_to_notes``).

Not kept: models without a ``config`` (the conditional models of ``addition``, built by hand around
their context); such an experiment's "models" list is empty. A class with
``config``, ``from_config`` and ``sample(params, n, seed)`` joins with one line in
``MODEL_CLASSES``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

from mini_flows import backend as B
from mini_flows.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from mini_flows.continuous.model import ContinuousFlowModel
from mini_flows.data.fixed_length import strip_rows
from mini_flows.data.piano import N_KEYS, roll_to_notes
from mini_flows.discrete.model import DiscreteFlowModel
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.model import LatentFlowModel
from mini_flows.nn.tree import Tree

MODEL_CLASSES: dict[str, Any] = {cls.__name__: cls for cls in (DiscreteFlowModel, LatentFlowModel, LSTMBaseline,
                                                                ContinuousFlowModel)}
"""Class name in results.json -> the class whose ``from_config`` rebuilds the model."""
FOLDER = "models"
"""The models' folder under --out."""
MUSIC = {"kind": "music"}
"""The decoder of piano rolls (T, 88): the MIDI notes of each step."""


def text_decoder(decode: Callable[[Sequence[int]], str], vocab_size: int, end: int | None = None) -> dict[str, Any]:
    """The decoder of token sequences written by ``decode`` (the data's own, e.g. ``Vocab.decode``
    or ``HMMSource.decode``), as a table of the text of each of the ``vocab_size`` token ids; ``end``:
    the end token that pads a row to its fixed length (``data.fixed_length``), where a sample is cut."""
    ids = B.to_numpy(B.xp().arange(vocab_size))
    return {"kind": "text", "table": [decode(ids[i:i + 1]) for i in range(vocab_size)], "end": end}


def slug(label: str) -> str:
    """A label as a file name: lower case, every run of other characters than letters and digits
    one hyphen ("AF / AF - NLSq" -> "af-af-nlsq")."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "model"


def save_model(out: Path, index: int, label: str, model: Any, params: Tree,
               decoder: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the ``index``-th kept model's checkpoint under ``out / FOLDER`` (created where missing)
    and return its results.json entry. ValueError for a model whose class ``MODEL_CLASSES`` does not
    hold or that has no ``config`` (it could not be rebuilt), or for a decoder of an unknown kind."""
    name = type(model).__name__
    if MODEL_CLASSES.get(name) is not type(model):
        raise ValueError(f"cannot keep {label!r}: {name} is not one of {', '.join(MODEL_CLASSES)}")
    if model.config is None:
        raise ValueError(f"cannot keep {label!r}: the model has no config to rebuild it from")
    if decoder is not None and decoder.get("kind") not in ("text", "music"):
        raise ValueError(f"decoder kind must be 'text' or 'music', got {decoder.get('kind')!r}")
    file = f"{FOLDER}/{index:02d}-{slug(label)}.npz"
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / file, params, config=model.config)
    entry = {"label": label, "file": file, "class": name}
    return entry if decoder is None else {**entry, "decoder": decoder}


def clear_models(out: Path) -> None:
    """Remove the checkpoints a previous run left in ``out / FOLDER``, so that only this run's remain."""
    for stale in (out / FOLDER).glob("*.npz"):
        stale.unlink()


def load_model(folder: Path, entry: dict[str, Any]) -> tuple[Any, Tree]:
    """(model, params) of a results.json "models" entry, the file relative to ``folder``; the
    model rebuilt by its class's ``from_config`` from the checkpoint's configuration. ValueError
    naming the file where the class is unknown or the checkpoint holds no configuration."""
    path = folder / entry["file"]
    cls = MODEL_CLASSES.get(entry["class"])
    if cls is None:
        raise ValueError(f"{path}: unknown model class {entry['class']!r}; known: {', '.join(MODEL_CLASSES)}")
    config = checkpoint_config(path)
    if config is None:
        raise ValueError(f"{path} holds no configuration to rebuild its model from")
    model = cls.from_config(config)
    return model, load_checkpoint(path, config=model.config)


def draw(model: Any, params: Tree, n: int, seed: int | None) -> list[Any]:
    """n samples of ``model`` as host arrays, each cut to its length: tokens (T,), piano rolls (T, K)
    or, from a model without lengths, its rows (D,)."""
    drawn = model.sample(params, n, seed)
    if isinstance(drawn, tuple):
        x, lengths = (B.to_numpy(a) for a in drawn)
        return [row[:t] for row, t in zip(x, lengths)]
    return list(B.to_numpy(drawn))


def decode(sample: Any, decoder: dict[str, Any] | None) -> str:
    """One sample as a line of text: the characters of a text decoder's table; for music, the MIDI
    notes of each step ("60 64 67 | 62 65 | -", "-" a silent step); else its numbers."""
    if decoder is None:
        return " ".join(str(v) if sample.dtype.kind in "iub" else f"{v:.6g}" for v in sample.ravel().tolist())
    if decoder["kind"] == "music":
        if sample.ndim != 2 or sample.shape[1] != N_KEYS:
            raise ValueError(f"a music decoder needs piano rolls (T, {N_KEYS}), got shape {sample.shape}")
        return " | ".join(" ".join(map(str, notes)) or "-" for notes in roll_to_notes(sample))
    table, end = decoder["table"], decoder.get("end")
    tokens = strip_rows(sample[None], end)[0] if end is not None else sample
    if tokens.size and (tokens.min() < 0 or tokens.max() >= len(table)):
        raise ValueError(f"token ids must lie in [0, {len(table)}), got values in [{tokens.min()}, {tokens.max()}]")
    return "".join(table[t] for t in tokens.tolist())
