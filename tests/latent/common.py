"""Small latent flow models with noisy parameters, shared by the tests of mini_flows.latent."""

from __future__ import annotations

import numpy as np

from mini_flows import backend as B
from mini_flows.continuous.length import SequenceContext, sequence_context
from mini_flows.latent import LatentConfig, LatentFlowModel
from mini_flows.nn.tree import tree_map


def small_model(kind: str = "af/af", output: str = "categorical", K: int = 4, H: int = 2, max_length: int = 4,
                hidden: int = 3, embed: int = 3, layers: int = 1, flow_layers: int = 2,
                transform: str = "nlsq") -> LatentFlowModel:
    """tanh flow networks: bounded raw parameters keep random draws well conditioned."""
    return LatentFlowModel(LatentConfig(K, max_length, prior=kind, transform=transform, output=output, latent_dim=H,
                                        embed_size=embed, hidden_size=hidden, num_layers=layers,
                                        flow_layers=flow_layers, flow_hidden_sizes=(4,), activation="tanh"))


def noisy_params(model: LatentFlowModel, rng: np.random.Generator, scale: float = 0.3, dtype: str = "float64"):
    """Initial parameters plus Gaussian noise, so no gradient is accidentally zero (on the backend)."""
    return tree_map(lambda a: B.asarray(B.to_numpy(a) + scale * rng.standard_normal(a.shape), dtype),
                    model.init(rng, dtype))


def random_x(model: LatentFlowModel, rng: np.random.Generator, batch: int, T: int) -> np.ndarray:
    """Tokens (batch, T) or a 0/1 roll (batch, T, K), as the model's output kind needs."""
    if model.output == "categorical":
        return rng.integers(0, model.K, size=(batch, T))
    return rng.integers(0, 2, size=(batch, T, model.K)).astype(np.float64)


def random_lengths(rng: np.random.Generator, batch: int, T: int) -> np.ndarray:
    return rng.integers(1, T + 1, size=batch)


def noise(rng: np.random.Generator, S: int, batch: int, T: int, H: int) -> np.ndarray:
    return rng.standard_normal((S, batch, T, H))



def context(model: LatentFlowModel, lengths: np.ndarray, T: int, dtype: str = "float64") -> SequenceContext:
    """The model's context of lengths over T steps, on the backend."""
    return sequence_context(B.asarray(lengths), T, model.max_length, dtype)
