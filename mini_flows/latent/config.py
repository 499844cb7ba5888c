"""The configuration of the sequence models, and its JSON form for checkpoints.

``LatentConfig`` builds a ``LatentFlowModel`` (and its inference network and emission),
``BaselineConfig`` an ``LSTMBaseline``; both models are ``ConfiguredModel``s, whose ``config``
property is the configuration as JSON values plus the fitted length prior's counts (p(T) is
model state outside the parameters), and ``from_config`` rebuilds an equal model from it:

    config = model.config                    # {"vocab_size": 8, ..., "length_counts": [0, 3, ...]}
    same = type(model).from_config(json.loads(json.dumps(config)))
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int, plain_scalar
from mini_flows.continuous.length import SequenceContext, sequence_context
from mini_flows.latent.length_prior import LengthPrior
from mini_flows.nn.tree import ChecksParams, Tree

OUTPUTS = ("categorical", "bernoulli")
LENGTH_COUNTS = "length_counts"
_Config = TypeVar("_Config", "LatentConfig", "BaselineConfig")
_Model = TypeVar("_Model", bound="ConfiguredModel")


@dataclasses.dataclass(frozen=True)
class LatentConfig:
    """The latent flow model p(T) p(z | T) prod_t p(x_t | z, T) with its inference network.

    vocab_size : K, token values ("categorical") or binary keys per step ("bernoulli", 88 for piano).
    max_length : the longest sequence (size of the length encoding and support of p(T)).
    prior : "af/af", "af/scf", "iaf/scf", "none/af" (Table 1's AF only: no dependence across
        time) or "af/none" (Table 2's "- AF hidden").
    transform : "nlsq" or "affine" (Table 2's "- NLSq").
    output : "categorical" or "bernoulli".
    latent_dim : H, the size of each z_t (supplement D: 50).
    embed_size, hidden_size, num_layers : embedding and every LSTM (supplement D: 500, 500, 2 layers).
    flow_layers : layers of the hidden flow (None: 5 for AF in time, 3 for IAF, as in supplement D).
    flow_hidden_sizes, activation : the MADE / MLP inside every flow layer.
    prior_lstm_size : the prior's time-context LSTM (None: hidden_size).
    """

    vocab_size: int
    max_length: int
    prior: str = "af/af"
    transform: str = "nlsq"
    output: str = "categorical"
    latent_dim: int = 50
    embed_size: int = 500
    hidden_size: int = 500
    num_layers: int = 2
    flow_layers: int | None = None
    flow_hidden_sizes: tuple[int, ...] = (500,)
    activation: str = "relu"
    prior_lstm_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "flow_hidden_sizes", tuple(self.flow_hidden_sizes))
        _plain_fields(self)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """The LSTM baseline p(T) prod_t p(x_t | x_<t, T).

    vocab_size : K, the number of token values (categorical) or of binary keys per step (bernoulli,
        88 for piano rolls).
    max_length : the longest sequence (size of each one-hot length vector and support of p(T)).
    embed_size, hidden_size, num_layers : the embedding and the LSTM (supplement D: 500, 500, 2).
    tie_weights : output weights tied to the input embedding through a projection to embed_size
        (the flow model's emission does the same); otherwise a Dense(hidden_size, K) layer.
    dropout : the probability of dropping each LSTM output unit during training (supplement D).
    output : "categorical" (x : (batch, T) integers) or "bernoulli" (x : (batch, T, K) of 0/1).
    """

    vocab_size: int
    max_length: int
    embed_size: int = 500
    hidden_size: int = 500
    num_layers: int = 2
    tie_weights: bool = True
    dropout: float = 0.0
    output: str = "categorical"

    def __post_init__(self) -> None:
        _plain_fields(self)


def _plain_fields(config: LatentConfig | BaselineConfig) -> None:
    """Replace NumPy scalars in ``config``'s fields (and in its tuples) by Python ones
    (``checks.plain_scalar``), so that ``to_json`` gives JSON values; the models validate them."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        value = tuple(map(plain_scalar, value)) if isinstance(value, tuple) else plain_scalar(value)
        object.__setattr__(config, field.name, value)


def to_json(config: LatentConfig | BaselineConfig, length_prior: LengthPrior) -> dict[str, Any]:
    """The configuration's fields as JSON values (tuples as lists) and ``length_counts``, p(T)'s counts."""
    fields = {key: list(value) if isinstance(value, tuple) else value
              for key, value in dataclasses.asdict(config).items()}
    return {**fields, LENGTH_COUNTS: list(length_prior.counts)}


def from_json(config_type: type[_Config], data: dict[str, Any]) -> tuple[_Config, LengthPrior]:
    """(configuration, length prior) from ``to_json``'s dict (or its JSON round trip)."""
    if LENGTH_COUNTS not in data:
        raise ValueError(f"a model configuration needs {LENGTH_COUNTS!r} (the length prior's counts), "
                         f"got keys {sorted(data)}")
    fields = {field.name: field for field in dataclasses.fields(config_type)}
    unknown = sorted(data.keys() - fields.keys() - {LENGTH_COUNTS})
    missing = [name for name, field in fields.items() if name not in data and field.default is dataclasses.MISSING]
    if unknown:
        raise ValueError(f"a checkpoint of another model: a {config_type.__name__} has no {', '.join(unknown)}")
    if missing:
        raise ValueError(f"a checkpoint of another model: its configuration lacks {', '.join(missing)}, which a "
                         f"{config_type.__name__} needs")
    config = config_type(**{key: value for key, value in data.items() if key != LENGTH_COUNTS})
    return config, LengthPrior(config.max_length, data[LENGTH_COUNTS])


class ConfiguredModel(ChecksParams):
    """What both sequence models share: ``hparams`` (their configuration, of type ``config_type``),
    the length prior p(T) (``self.length_prior``, not trained by gradient: uniform until
    ``fit_lengths``), the unit of ``per_token``, the JSON ``config`` with ``from_config``, and
    ``check_params``, which their public entries call first."""

    config_type: type

    def __init__(self, config: LatentConfig | BaselineConfig):
        self.hparams = config
        self.length_prior = LengthPrior(config.max_length)
        self.unit = "bits/char" if config.output == "categorical" else "nats/step"

    @property
    def config(self) -> dict[str, Any]:
        """The configuration as JSON values and "length_counts", the fitted p(T)'s counts."""
        return to_json(self.hparams, self.length_prior)

    @classmethod
    def from_config(cls: type[_Model], config: dict[str, Any]) -> _Model:
        """The model whose ``config`` is ``config`` (e.g. read back from a checkpoint)."""
        hparams, length_prior = from_json(cls.config_type, config)
        model = cls(hparams)
        model.length_prior = length_prior
        return model

    def generation_start(self, params: Tree, n: int, seed: int | None,
                         lengths: Array | None) -> tuple[Any, SequenceContext]:
        """What generating n sequences starts from: the generator ``B.rng(seed)``, which has drawn
        the lengths T ~ p(T) (unless ``lengths`` : (n,) is given), and their context over max T
        steps in the embedding's dtype."""
        check_positive_int("n", n)
        self.check_params(params)
        rng = B.rng(seed)
        lengths = self.length_prior.lengths_for(n, rng, lengths)
        dtype = B.value(params["embed"]["E"]).dtype
        return rng, sequence_context(lengths, int(lengths.max()), self.hparams.max_length, dtype)

    def fit_lengths(self, lengths: Array) -> None:
        """Set p(T) to the add-one smoothed empirical distribution of ``lengths`` : (N,)."""
        self.length_prior = LengthPrior.fit(lengths, self.hparams.max_length)

    def per_token(self, nats: Array, lengths: Array) -> float:
        """sum(nats) / sum(lengths) in ``self.unit``: bits per character (categorical; divided by
        log 2) or nats per time step (bernoulli; the polyphonic-music "nats per note" is per frame)."""
        total = float(B.to_numpy(B.value(nats)).sum()) / float(B.to_numpy(lengths).sum())
        return total / math.log(2) if self.hparams.output == "categorical" else total
