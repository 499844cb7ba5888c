"""What the two sequence experiments (``charlm`` on text, ``music`` on piano rolls) share: the toy
sizes, the batches, and the training and scoring of the LSTM baseline and of a latent flow model.

Every model sees the same shuffled batches (``BATCH`` sequences, ``QUICK_BATCH`` under --quick,
reshuffled each epoch from the seed) for the same number of Adam steps at ``LR`` with the gradient
norm clipped at ``CLIP`` (supplement D). The latent models train on the ELBO with KL annealing: weight ~0 for the first
tenth of the steps, then linear to 1 over the next three tenths.
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.data.text import batches
from mini_flows.experiments.figures import save_figure, table_bars
from mini_flows.experiments.memory import baseline_footprint, latent_footprint
from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report, Table
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.config import BaselineConfig, LatentConfig
from mini_flows.latent.model import LatentFlowModel
from mini_flows.latent.train import train
from mini_flows.optim import Adam, TrainingDiverged
from mini_flows.nn.tree import Tree, tree_map
from mini_flows.train import epochs, fit

SIZES = dict(embed_size=16, hidden_size=32, num_layers=1)
LATENT = dict(latent_dim=4, flow_hidden_sizes=(32,))
BATCH, LR, CLIP = 32, 3e-3, 0.25
QUICK_BATCH, QUICK_SAMPLES = 8, (2, 2)
"""--quick: batches of 8 sequences, ELBO and importance sampling with 2 samples each. A step's
activations grow with the batch times the samples times T (T + K): the length encoding of
supplement C gives every step 2 T numbers, concatenated into every LSTM and flow that reads them.
On a file of lines up to T = 177 characters, batches of 32 and 5 importance samples took 0.7 GB."""
TEST_BATCH, SAMPLE_CHUNK = 16, 10
"""Test sequences scored at once, in order of length (``test_batches``; ``QUICK_BATCH`` under
--quick), and noise samples drawn at once in importance sampling (``latent.train.evaluate``'s
chunk): a scoring step then holds 160 sequence-samples, as charlm's training step (32 sequences
of 5 samples); scoring 100 sequences at once needed about 20 GB on sentences of 288 characters."""


def batch_size(settings: Settings, test: bool = False) -> int:
    """Sequences per training batch (``BATCH``), or per test batch (``test``: ``TEST_BATCH``);
    ``QUICK_BATCH`` for both under --quick."""
    return QUICK_BATCH if settings.quick else TEST_BATCH if test else BATCH


def test_batches(test_set: list, batch: int) -> list:
    """The test sequences in batches of ``batch``, in order of length (so that little of each is
    padding), as (padded, lengths) pairs (``data.text.batches``)."""
    return list(batches(sorted(test_set, key=len), batch, None))


def shuffled(sequences: list, seed: int, batch: int, pool: int | None = None, dtype: str = "float64") -> Any:
    """Endless batches of ``batch`` of ``sequences``, reshuffled each epoch (from ``seed + epoch``);
    ``pool`` batches of similar lengths (``data.text.batches``); piano rolls in ``dtype`` (tokens as
    they are)."""
    def epoch_batches(epoch: int) -> Any:
        for x, lengths in batches(sequences, batch, seed + epoch, pool=pool):
            yield (x.astype(dtype) if x.dtype.kind == "f" else x), lengths

    return epochs(epoch_batches)


def in_float64(params: Tree) -> Tree:
    """A copy of ``params`` in float64, to score a model trained in float32 at full precision."""
    return tree_map(lambda a: a.astype("float64"), params)


def loss_unit(model: LatentFlowModel | LSTMBaseline) -> str:
    """The unit of both models' training losses, nats per real step: per character of text, per
    time step of a piano roll."""
    return "nats/char" if model.hparams.output == "categorical" else "nats/step"


def train_latent(label: str, model: LatentFlowModel, train_set: list, steps: int, settings: Settings,
                 samples: int, pool: int | None = None, dtype: str = "float64") -> Any:
    """The annealed-ELBO training of ``latent.train.train`` on ``shuffled(train_set, seed,
    batch_size(settings), pool, dtype)`` with params in ``dtype``; the trained params, or None
    where training diverged (non-finite numbers), which is printed. No warning where the loss
    rises: the annealed KL weight makes it rise by design."""
    seed = settings.seed
    data = shuffled(train_set, seed, batch_size(settings), pool, dtype)
    try:
        params, _ = train(model, model.init(B.host_rng(seed), dtype), data, steps, seed, lr=LR, clip=CLIP,
                          samples=samples, kl_schedule=(steps // 10, max(1, 3 * steps // 10)),
                          reporter=settings.progress(label, steps, warn_rise=False, unit=loss_unit(model)))
    except TrainingDiverged as err:
        settings.say(f"  {label:<22} diverged: {err}")
        return None
    return params


def train_lstm(label: str, model: LSTMBaseline, train_set: list, steps: int, settings: Settings,
               pool: int | None = None, dtype: str = "float64") -> Any:
    """Adam on the baseline's per-token NLL over the same batches as ``train_latent``, in ``dtype``;
    returns the params."""
    def loss_and_grads(params: Any, batch: Any) -> tuple[float, Any]:
        x, lengths = batch
        return model.loss_and_grads(params, B.asarray(x), B.asarray(lengths))

    batches_of_steps = shuffled(train_set, settings.seed, batch_size(settings), pool, dtype)
    params, _ = fit(loss_and_grads, model.init(B.host_rng(settings.seed), dtype), batches_of_steps, steps,
                    Adam(lr=LR, clip_norm=CLIP), reporter=settings.progress(label, steps, unit=loss_unit(model)))
    return params


def training_note(steps: int, batch: int, samples: tuple[int, int]) -> str:
    """The note saying how every model trained and was scored (``samples``: ELBO samples in
    training, importance samples at test)."""
    return (f"{steps} Adam steps of batch {batch} per model; ELBO with {samples[0]} samples, NLL by importance "
            f"sampling with {samples[1]}; toy sizes (embedding 16, LSTM 32, latent 4)")


def sequence_report(settings: Settings, table: Table, notes: list[str], results: dict[str, Any], exact: float | None,
                    steps: int, figure: str, ylabel: str) -> Report:
    """The report of a sequence experiment: a note where a model diverged, the models' scores, the
    source's exact NLL and the steps for results.json, and the NLL column as bars in ``figure``."""
    if any(r.get("diverged") for r in results.values()):
        notes.append("a row of dashes: that model diverged (non-finite gradients)")
    report = Report(table, notes, results={"models": results, "source_nll": exact, "steps": steps})
    save_figure(settings, figure, table_bars(table, ["NLL"], ylabel), report)
    return report


def lstm_nll(model: LSTMBaseline, params: Any, test_set: list, batch: int) -> float:
    """Exact test NLL of the baseline with log p(T), per step in ``model.unit`` (bits per
    character for tokens, nats per time step for piano rolls), scored ``test_batches`` of ``batch``."""
    nats = [-model.log_prob(params, B.asarray(x), B.asarray(lengths)) for x, lengths in test_batches(test_set, batch)]
    return model.per_token(B.xp().concatenate(nats), B.asarray([len(s) for s in test_set]))


def memory_needs(label: str, config: BaselineConfig | LatentConfig, train_steps: int, test_steps: int,
                 samples: tuple[int, int], itemsize: int = 8) -> list[tuple[str, int]]:
    """The bytes (``memory``) of training the model of ``config`` on batches of ``train_steps``
    sequence steps (the batch padded to its longest) in numbers of ``itemsize`` bytes, and of
    scoring it, in float64, on batches of ``test_steps``; a latent model with ``samples`` (ELBO
    samples, importance samples of which ``SAMPLE_CHUNK`` at a time). Sampling, one step at a
    time, needs less than either."""
    if isinstance(config, BaselineConfig):
        footprint, (train_samples, test_samples) = baseline_footprint(config), (0, 0)
    else:
        footprint, (train_samples, test_samples) = latent_footprint(config), (samples[0], min(SAMPLE_CHUNK, samples[1]))
    return [(f"training {label}", footprint.step_bytes(train_steps, itemsize, True, train_samples)),
            (f"scoring {label}", footprint.step_bytes(test_steps, 8, False, test_samples))]
