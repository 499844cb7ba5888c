"""Dropout on the time LSTM of the prior, where supplement D puts it.

Supplement D: "Dropout is used to regularize the baseline model and the LSTM in the prior of the
AF / AF and AF / SCF models." We drop the outputs of that LSTM's top layer, the time context c_t
that conditions every flow layer at step t (inverted dropout, so nothing changes at evaluation):

    h_t  ->  h_t * m_t,   m_t = keep_t / (1 - p),   keep_t ~ Bernoulli(1 - p) per unit,

with the mask drawn by the caller from an explicit generator (``dropout_mask``), so a fixed mask
gives a fixed, differentiable map. Only AF-in-time priors evaluate their LSTM over all steps at
once during training, which is what the mask's (batch, T, lstm_size) shape matches.
"""

from __future__ import annotations

import copy
from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_float, check_shape
from mini_flows.continuous.priors import SequencePrior
from mini_flows.nn.tree import Tree


def dropout_mask(rng: Any, p: float, shape: tuple[int, ...], dtype: Any = "float64") -> Array:
    """m = [u >= p] / (1 - p) with u ~ U[0, 1) from ``rng`` (a ``B.rng`` generator); p in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {p!r}")
    return ((rng.random(shape) >= p) / (1.0 - p)).astype(dtype)


class _DroppedLSTM:
    """An LSTM whose outputs are multiplied by a fixed mask: y -> y * m (the final state is untouched)."""

    def __init__(self, lstm: Any, mask: Array):
        self.lstm, self.mask = lstm, mask

    def forward(self, params: Tree, x: Array, mask: Array | None = None,
                initial_state: Any = None) -> tuple[tuple[Array, Any], Any]:
        (y, state), cache = self.lstm.forward(params, x, mask, initial_state)
        return (y * self.mask, state), cache

    def backward(self, params: Tree, cache: Any, d_outputs: Array, d_final: Any = None) -> Any:
        return self.lstm.backward(params, cache, d_outputs * self.mask, d_final)


def with_dropout(prior: SequencePrior, mask: Array | None) -> SequencePrior:
    """The prior with its time-LSTM outputs multiplied by ``mask`` : (batch, T, lstm_size), or the
    prior itself when mask is None. A shallow copy: parameters and the original are shared and untouched.

    Raises ValueError for an IAF-in-time prior, which the paper trains without dropout (its LSTM
    runs one step at a time while densities are evaluated).
    """
    if mask is None:
        return prior
    check_dropout_prior(prior)
    dropped = copy.copy(prior)
    dropped.lstm = _DroppedLSTM(prior.lstm, mask)
    return dropped


def check_dropout_prior(prior: SequencePrior) -> None:
    """Raise ValueError unless the prior is AF in time, the models supplement D trains with dropout."""
    if prior.time != "af":
        raise ValueError("dropout applies to the prior LSTM of AF-in-time models (supplement D); "
                         f"the {prior.time}/{prior.hidden} prior trains without it: pass dropout=0")


def check_dropout_mask(mask: Array, shape: tuple[int, ...], like: Array) -> None:
    """Raise unless ``mask`` is a finite float array of ``like``'s dtype and the given shape."""
    check_float("dropout_mask", mask, like=like)
    check_shape("dropout_mask", mask, shape)
    if bool(B.xp().any(B.value(mask) < 0)):
        raise ValueError("dropout_mask must be non-negative")
