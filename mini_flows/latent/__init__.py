"""Latent normalizing flows for discrete sequences (Ziegler and Rush, 2019), the latent-variable part.

The generative model p(T) p(z | T) prod_t p(x_t | z, T) with a flow prior from
``mini_flows.continuous``, the inference network q(z | x), the ELBO with its hand-written
gradient, importance-sampled likelihoods, generation, and the training loop; and the LSTM
baseline the paper compares with. ``LatentConfig`` and ``BaselineConfig`` configure the two models.
"""

from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.dropout import dropout_mask
from mini_flows.latent.emission import Emission
from mini_flows.latent.inference import InferenceNetwork
from mini_flows.latent.length_prior import LengthPrior
from mini_flows.latent.model import LatentFlowModel, log_mean_exp
from mini_flows.latent.train import evaluate, kl_weight, train

__all__ = ["BaselineConfig", "Emission", "InferenceNetwork", "LSTMBaseline", "LatentConfig", "LatentFlowModel",
           "LengthPrior", "dropout_mask", "evaluate", "kl_weight", "log_mean_exp", "train"]
