"""Discrete flows (Tran et al. 2019): modular arithmetic on one-hot vectors, the straight-through
argmax, autoregressive and bipartite flows, categorical bases and the model that stacks them.

Direction convention: a flow's ``forward(x)`` maps base -> data, y_d = (mu_d + sigma_d x_d) mod K
(eq. 5); ``inverse(y)`` maps data -> base and is what training runs.
"""

from mini_flows.discrete.bases import AutoregressiveCategorical, FactorizedCategorical
from mini_flows.discrete.flows import DiscreteAutoregressiveFlow, DiscreteBipartiteFlow, DiscreteFlow, with_progress
from mini_flows.discrete.model import DiscreteFlowModel, build_model, identity_start, on_trained_base
from mini_flows.discrete.modular import (
    mod_inverse,
    one_hot_add,
    one_hot_inverse_scale,
    one_hot_minus,
    one_hot_multiply,
    units,
)
from mini_flows.discrete.networks import BiLSTMNet, LSTMNet, MADENet, MLPNet, TransformerNet, make_network
from mini_flows.discrete.straight_through import mask_scale_logits, one_hot_argmax

__all__ = [
    "AutoregressiveCategorical",
    "BiLSTMNet",
    "DiscreteAutoregressiveFlow",
    "DiscreteBipartiteFlow",
    "DiscreteFlow",
    "DiscreteFlowModel",
    "FactorizedCategorical",
    "LSTMNet",
    "MADENet",
    "MLPNet",
    "TransformerNet",
    "build_model",
    "identity_start",
    "on_trained_base",
    "make_network",
    "mask_scale_logits",
    "mod_inverse",
    "one_hot_add",
    "one_hot_argmax",
    "one_hot_inverse_scale",
    "one_hot_minus",
    "one_hot_multiply",
    "units",
    "with_progress",
]
