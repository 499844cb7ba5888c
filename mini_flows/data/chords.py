"""Synthetic polyphonic music with a known likelihood: chord progressions as piano rolls, for tests
and demos of the music models (Ziegler and Rush, 2019, section 6.2) without a third-party corpus.

The source draws a length T ~ p(T), a chord sequence c_1 ~ pi, c_t ~ A[c_{t-1}] (a Markov chain
over a few chords, each a set of MIDI notes), and at each step plays every note of chord c_t
independently with probability 1 - dropout (note dropout; no other key sounds). So it is an HMM
whose emissions are products of Bernoullis over the 88 keys, and p(roll) is exact by the forward
algorithm:

    log p(x_t | c) = n_on(c) log(1 - dropout) + n_off(c) log(dropout), or -inf if a key outside c sounds,

where n_on(c) and n_off(c) count the notes of c that sound and that are silent at step t.
The entropy per time step, E[-log p(x)] / E[T], is estimated by Monte Carlo over exact log p(x)
(``entropy_nats_per_step``): exact entropies of HMM outputs have no closed form.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from mini_flows.checks import check_positive_int
from mini_flows.data.hmm import (
    MarkovChainSource,
    check_length_probs,
    check_stochastic,
    forward_log_likelihood,
    uniform_lengths,
)
from mini_flows.data.piano import N_KEYS, notes_to_roll
from mini_flows.data.text import pad_sequences

DIATONIC_CHORDS = {
    "C": (48, 60, 64, 67),
    "Dm": (50, 62, 65, 69),
    "Em": (52, 64, 67, 71),
    "F": (53, 65, 69, 72),
    "G": (55, 67, 71, 74),
    "Am": (57, 69, 72, 76),
    "Bdim": (59, 71, 74, 77),
}
"""The triads of C major in root position, each with its root doubled an octave below."""


def as_rolls(rolls: Sequence[Any]) -> list[np.ndarray]:
    """Each roll as float64 (T, 88) holding only 0 and 1, or ValueError naming the roll."""
    arrays = []
    for n, roll in enumerate(rolls):
        a = np.asarray(roll, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != N_KEYS:
            raise ValueError(f"roll {n} must have shape (T, {N_KEYS}), got {a.shape}")
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"roll {n} must hold only 0 and 1")
        arrays.append(a)
    return arrays


@dataclasses.dataclass(frozen=True, eq=False)
class ChordSource(MarkovChainSource):
    """A Markov chain over chords with note dropout, emitting piano rolls (T, 88).

    Attributes
    ----------
    chords : C tuples of MIDI note numbers in [21, 108]
    initial : (C,), p(c_1)
    transition : (C, C), A[i, j] = p(c_{t+1} = j | c_t = i)
    dropout : probability in [0, 1) that a note of the current chord is silent
    length_probs : (T_max + 1,), p(T) indexed by T, with p(0) = 0
    members : (C, 88), derived from ``chords``

    ``sample(n, seed)`` gives float64 piano rolls (T_i, 88) holding 0 and 1.
    """

    step_shape, step_dtype = (N_KEYS,), np.float64

    chords: tuple[tuple[int, ...], ...]
    initial: np.ndarray
    transition: np.ndarray
    dropout: float
    length_probs: np.ndarray
    members: np.ndarray = dataclasses.field(init=False, repr=False)
    """(C, 88) 0/1, set from ``chords``: members[c, k] = 1 where key k belongs to chord c."""

    def __post_init__(self) -> None:
        if len(self.chords) == 0:
            raise ValueError("chords must hold at least one chord")
        object.__setattr__(self, "members", notes_to_roll([tuple(c) for c in self.chords], where="chords"))
        object.__setattr__(self, "chords", tuple(tuple(int(k) for k in c) for c in self.chords))
        c = (len(self.chords),)
        object.__setattr__(self, "initial", check_stochastic("initial", self.initial, c))
        object.__setattr__(self, "transition", check_stochastic("transition", self.transition, c * 2))
        object.__setattr__(self, "length_probs", check_length_probs(self.length_probs))
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")

    def emit(self, rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
        """The chord's keys, each silent with probability ``dropout``: frames (n, 88)."""
        return self.members[states] * (rng.random((len(states), N_KEYS)) >= self.dropout)

    def log_probs(self, rolls: Sequence[Any]) -> np.ndarray:
        """log p(roll) = log p(T) + log p(x_{1:T} | T) in nats for each roll (T, 88): (N,)."""
        arrays = as_rolls(rolls)
        if not arrays:
            return np.zeros(0)
        x, lengths = pad_sequences(arrays, 0)
        on_in = x @ self.members.T
        off_in = self.members.sum(axis=1) - on_in
        on_out = x.sum(axis=-1, keepdims=True) - on_in
        with np.errstate(divide="ignore", invalid="ignore"):
            log_keep, log_drop = math.log1p(-self.dropout), np.log(self.dropout)
            log_e = on_in * log_keep + np.where(off_in > 0, off_in * log_drop, 0.0) + np.where(on_out > 0, -np.inf, 0.0)
            log_t = np.log(np.append(self.length_probs, 0.0))
        log_length = log_t[np.minimum(lengths, len(self.length_probs))]
        return log_length + forward_log_likelihood(log_e, lengths, self.initial, self.transition)

    def log_prob(self, roll: np.ndarray) -> float:
        """log p(roll) in nats of one roll (T, 88), including log p(T)."""
        return float(self.log_probs([roll])[0])

    def nll_nats_per_step(self, rolls: Sequence[Any]) -> float:
        """The source's own NLL on ``rolls``: sum_i -log p(x_i) / sum_i T_i, in nats per time step
        (the unit of the polyphonic-music literature, which Ziegler and Rush call nats per note)."""
        if len(rolls) == 0:
            raise ValueError("nll_nats_per_step needs at least one roll")
        log_p = self.log_probs(rolls)
        return float(-log_p.sum() / sum(len(r) for r in rolls))

    def entropy_nats_per_step(self, n: int, seed: int) -> tuple[float, float]:
        """Monte Carlo estimate of E[-log p(x)] / E[T] from n samples with exact log p(x):
        (estimate, standard error) in nats per time step."""
        check_positive_int("n", n, minimum=2)
        nats = -self.log_probs(self.sample(n, seed))
        return float(nats.mean() / self.mean_length), float(nats.std(ddof=1) / math.sqrt(n) / self.mean_length)


def make_chords(
    seed: int,
    n_chords: int = 4,
    dropout: float = 0.1,
    min_length: int = 16,
    max_length: int = 64,
    stay: float = 0.5,
) -> ChordSource:
    """A random chord source: ``n_chords`` distinct chords of ``DIATONIC_CHORDS``, uniform p(c_1),
    transitions A = stay * I + (1 - stay) * Dirichlet(1) rows (chords last a few steps), and T
    uniform on [min_length, max_length]. Drawn with ``numpy.random.default_rng(seed)``."""
    check_positive_int("n_chords", n_chords)
    if n_chords > len(DIATONIC_CHORDS):
        raise ValueError(f"n_chords must be at most {len(DIATONIC_CHORDS)}, got {n_chords}")
    if not (isinstance(stay, (int, float)) and 0 <= stay <= 1):
        raise ValueError(f"stay must be a number in [0, 1], got {stay!r}")
    lengths = uniform_lengths(min_length, max_length)
    rng = np.random.default_rng(seed)
    names = sorted(DIATONIC_CHORDS)
    chords = tuple(DIATONIC_CHORDS[names[i]] for i in rng.choice(len(names), n_chords, replace=False))
    transition = stay * np.eye(n_chords) + (1 - stay) * rng.dirichlet(np.ones(n_chords), size=n_chords)
    return ChordSource(chords, np.full(n_chords, 1.0 / n_chords), transition, dropout, lengths)
