"""How much memory a model of the text and music experiments needs, estimated from its
configuration before anything is allocated, so that a run that cannot fit stops at once with one
line saying what to change, instead of dying late with a memory traceback.

A step of a model (a training step, or scoring a batch) holds its parameters and the activations
of its batch. ``Footprint`` counts both from a model's configuration, in numbers:

    bytes = itemsize * (copies * parameters + items * per_item + sampled_items * per_sampled_item)

``copies`` is ``TRAINING_COPIES`` for a training step (the parameters, their gradients, the
clipped gradients, Adam's two moments and the new parameters and moments that Adam's
all-or-nothing step computes before writing: ``optim.Adam.step``) and 1 for scoring or sampling.
An item is a row (D tokens) of a discrete bipartite flow, or one step of one sequence of a
sequence model; a sampled item is one step of one sequence in one noise sample of a latent flow
model (its inference network runs once per sequence, its prior and emission once per sample).

The parameters are counted exactly from the configuration (the shapes each model's ``init``
draws). The activations are counted layer by layer: the sum of the widths of what each layer
reads and writes per item (the one-hot rows, the length encoding of supplement C concatenated into
every LSTM and flow that reads it, each LSTM's gates, cell and output, the flows' hidden layers,
the logits), times how many such arrays a step of that kind of model holds at its peak
(``BIPARTITE_COPIES``, ...). tests/experiments/test_memory.py checks the parameter counts against
``init`` and the estimate against the peak that tracemalloc measures for real steps: never below
it, and at most twice it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mini_flows import backend as B
from mini_flows.continuous.priors import PRIORS
from mini_flows.latent.config import BaselineConfig, LatentConfig

TRAINING_COPIES = 8
"""Parameter-sized arrays alive at the peak of a training step (see the module docstring)."""
BIPARTITE_COPIES, BASELINE_COPIES, LATENT_COPIES = 2, 4, 2.5
"""How many arrays of its layers' summed widths a step of each kind of model holds at its peak,
measured with tracemalloc on this code and rounded up (tests/experiments/test_memory.py measures
again): four for the LSTM baseline (the forward pass's inputs and outputs, the backward pass's
gradients of both); fewer for the bipartite flows, whose networks write logits at half the
positions only, and for the latent model, which frees its temporaries as it loops over the
prior's layers and time steps."""
LSTM_WIDTH = 6
"""Numbers an LSTM layer keeps per step and unit: its four gates, the cell and the output."""
TRANSFORM_PARAMS = {"affine": 2, "nlsq": 5}
"""Network outputs per dimension of a continuous flow's scalar transform (``continuous.scalar``)."""


@dataclass(frozen=True)
class Footprint:
    """A model's size in numbers: ``parameters``; ``per_item``, the activation widths of one item
    (a bipartite flow's row, a sequence model's step); ``per_sampled_item``, those of one step in
    one noise sample (latent flow models only). Both count the numbers a step holds per item: the
    layers' summed widths times the model's ``*_COPIES``."""

    parameters: int
    per_item: float
    per_sampled_item: float = 0

    def step_bytes(self, items: int, itemsize: int, training: bool, samples: int = 0) -> int:
        """Bytes of a step over ``items`` items (rows, or sequence steps of the batch) and
        ``samples`` noise samples of each, with numbers of ``itemsize`` bytes; ``training``: a
        training step (``TRAINING_COPIES`` of the parameters), else scoring or sampling."""
        activations = items * (self.per_item + samples * self.per_sampled_item)
        return round(itemsize * ((TRAINING_COPIES if training else 1) * self.parameters + activations))


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _lstm_parameters(input_size: int, hidden: int, layers: int, directions: int = 1) -> int:
    sizes = [input_size] + [directions * hidden] * (layers - 1)
    return directions * sum(4 * hidden * (n_in + hidden + 1) for n_in in sizes)


def _lstm_widths(input_size: int, hidden: int, layers: int, directions: int = 1) -> int:
    """Numbers per step an LSTM stack keeps: each layer's input and, per direction, its gates,
    cell and output."""
    return input_size + layers * directions * LSTM_WIDTH * hidden + (layers - 1) * directions * hidden


def bipartite_footprint(vocab_size: int, length: int, num_flows: int, scale: bool, hidden: int,
                        layers: int) -> Footprint:
    """A factorized base over ``length`` positions of ``vocab_size`` tokens and ``num_flows``
    bipartite flows, each an MLP of ``layers`` hidden layers of ``hidden`` units on the one-hot
    row (``experiments.textflows.bipartite_lm``); an item is a row."""
    row = length * vocab_size
    heads = 2 if scale else 1
    sizes = [row] + [hidden] * layers + [heads * row]
    per_flow = sum(_dense(a, b) for a, b in zip(sizes, sizes[1:])) + heads * row  # + the location bias
    # each flow: the one-hot row in, its hidden layers, the logits, and the row it writes out
    widths = row + layers * hidden + heads * row + row
    return Footprint(row + num_flows * per_flow, BIPARTITE_COPIES * (row + num_flows * widths))


def baseline_footprint(config: BaselineConfig) -> Footprint:
    """The LSTM baseline of ``config`` (``latent.baseline.LSTMBaseline``); an item is a step."""
    K, M, E, h, L = config.vocab_size, config.max_length, config.embed_size, config.hidden_size, config.num_layers
    output = _dense(h, E) + K if config.tie_weights else _dense(h, K)
    parameters = (K + 1) * E + _lstm_parameters(E + 2 * M, h, L) + output  # K + 1: the start token's row
    # the embedded (or projected) input beside the length encoding, the LSTM, the output layer, the logits
    widths = _lstm_widths(E + 2 * M, h, L) + E + (E if config.tie_weights else 0) + K
    return Footprint(parameters, BASELINE_COPIES * widths)


def _flow_layer(kind: str, layer: int, H: int, cond: int, hidden: tuple[int, ...], outputs: int) -> tuple[int, int]:
    """(parameters, widths) of layer ``layer`` of a ``FlowStack`` of ``kind`` over H dimensions
    conditioned on ``cond`` numbers, its networks of ``hidden`` units with ``outputs`` outputs
    per dimension: AF's MADE reads z and the condition, SCF's MLP the kept half beside it, the
    elementwise layer's MLP the condition only (``continuous.layers``)."""
    if kind == "af":
        inputs, changed, extra = H, H, cond * (hidden[0] if hidden else H * outputs)
    elif kind == "scf":
        kept = H // 2 if layer % 2 == 0 else H - H // 2
        inputs, changed, extra = kept + cond, H - kept, 0
    else:
        inputs, changed, extra = cond, H, 0
    sizes = [inputs, *hidden, changed * outputs]
    widths = H + sum(sizes[1:]) + (inputs if kind == "scf" else 0)  # SCF concatenates its input
    return sum(_dense(a, b) for a, b in zip(sizes, sizes[1:])) + extra, widths


def latent_footprint(config: LatentConfig) -> Footprint:
    """The latent flow model of ``config`` (``latent.model.LatentFlowModel``): its inference
    network per step of a sequence, its prior and emission per step of each noise sample."""
    if config.prior not in PRIORS:
        raise ValueError(f"unknown prior {config.prior!r}; choose from {PRIORS}")
    K, M, E, h, L, H = (config.vocab_size, config.max_length, config.embed_size, config.hidden_size,
                        config.num_layers, config.latent_dim)
    time, kind = config.prior.split("/")
    lstm_size = 0 if time == "none" else config.prior_lstm_size or h
    cond = lstm_size + 2 * M
    layers = [_flow_layer(kind, l, H, cond, config.flow_hidden_sizes, TRANSFORM_PARAMS[config.transform])
              for l in range(config.flow_layers if config.flow_layers is not None else 3 if time == "iaf" else 5)]
    prior_parameters = sum(p for p, _ in layers) + (_lstm_parameters(H, lstm_size, L) if lstm_size else 0)
    parameters = (K * E + _lstm_parameters(E + 2 * M, h, L, 2) + _dense(2 * h, 2 * H)  # embedding, inference
                  + prior_parameters + _lstm_parameters(H + 2 * M, h, L, 2) + _dense(H + 2 * h, E) + K)  # emission
    inference = E + _lstm_widths(E + 2 * M, h, L, 2) + 2 * H
    prior = cond + (_lstm_widths(H, lstm_size, L) if lstm_size else 0) + sum(w for _, w in layers)
    emission = _lstm_widths(H + 2 * M, h, L, 2) + H + 2 * h + E + 2 * K  # the logits and their softmax
    return Footprint(parameters, LATENT_COPIES * inference, LATENT_COPIES * (H + 2 * M + prior + emission))


def available_memory() -> int | None:
    """Bytes this process may still allocate on the host: the smaller of Linux's MemAvailable and
    the room left under its control group's limit, or None where neither is known (not Linux)."""
    room = []
    try:
        found = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        found = None
    if found:
        room.append(int(found.group(1)) * 1024)
    try:
        limit, used = (Path("/sys/fs/cgroup", name).read_text().strip() for name in ("memory.max", "memory.current"))
    except OSError:
        limit = used = ""
    if limit.isdigit() and used.isdigit():  # "max" where the group has no limit
        room.append(int(limit) - int(used))
    return min(room) if room else None


def gigabytes(n: float) -> str:
    """Bytes as "1.2 GB"."""
    return f"{n / 1e9:.1f} GB"


def require(needs: list[tuple[str, int]], change: str, available: int | None = None) -> None:
    """Raise ValueError, in one line, where the largest of ``needs`` ((what, bytes), e.g.
    ("training the bipartite flow", 9_100_000_000)) exceeds ``available`` bytes, saying
    ``change``: what to change so that it fits.

    ``available`` defaults to ``available_memory()``, the host's, except on CuPy: there the arrays
    live on the GPU, whose free memory only backend.py could ask CuPy for, so nothing is checked,
    and a step that does not fit fails at its first allocation with CuPy's OutOfMemoryError, which
    the command reports in one line.
    """
    if available is None and B.get_backend() != "cupy":
        available = available_memory()
    if available is None or not needs:
        return
    what, largest = max(needs, key=lambda need: need[1])
    if largest > available:
        raise ValueError(f"{what} needs about {gigabytes(largest)}, more than the {gigabytes(available)} of memory "
                         f"available; {change}")
