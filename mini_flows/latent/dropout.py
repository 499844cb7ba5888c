"""Dropout on the time LSTM of the prior, where supplement D puts it.

Supplement D: "Dropout is used to regularize the baseline model and the LSTM in the prior of the
AF / AF and AF / SCF models." We drop the outputs of that LSTM's top layer, the time context c_t
that conditions every flow layer at step t (inverted dropout, so nothing changes at evaluation):

    h_t  ->  h_t * m_t,   m_t = keep_t / (1 - p),   keep_t ~ Bernoulli(1 - p) per unit,

with the mask drawn by the caller from an explicit generator (``dropout_mask``), so a fixed mask
gives a fixed, differentiable map. Only AF-in-time priors evaluate their LSTM over all steps at
once during training, which is what the mask's (batch, T, lstm_size) shape matches: the prior
takes it as an argument (``SequencePrior.log_prob_and_cache(..., dropout_mask)``), the LSTM
baseline likewise for its LSTM's outputs (``LSTMBaseline.forward(..., dropout_mask)``).
"""

from __future__ import annotations

from typing import Any

from mini_flows.backend import Array


def dropout_mask(rng: Any, p: float, shape: tuple[int, ...], dtype: Any = "float64") -> Array:
    """m = [u >= p] / (1 - p) with u ~ U[0, 1) from ``rng`` (a ``B.rng`` generator); p in [0, 1)."""
    check_dropout_rate(p)
    return ((rng.random(shape) >= p) / (1.0 - p)).astype(dtype)


def check_dropout_rate(p: Any) -> None:
    """Raise ValueError unless p, a dropout probability, is a number in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {p!r}")
