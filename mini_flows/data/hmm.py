"""A synthetic character source with a known likelihood: a small hidden Markov model (HMM) with a
length distribution, for tests and demos of character-level models (Ziegler and Rush, 2019, 6.1).

The source draws a length T ~ p(T), hidden states s_1 ~ pi, s_t ~ A[s_{t-1}], and characters
x_t ~ B[s_t]. Its probability of a sequence is exact by the forward algorithm:

    p(x_{1:T}) = p(T) sum_{s_1..s_T} pi(s_1) B(s_1, x_1) prod_{t>1} A(s_{t-1}, s_t) B(s_t, x_t),

computed with per-step normalisation (scaled forward variables), so it is stable for any length.
``nll_bits_per_char`` on a test set is the floor any model of these sequences is compared against.

References: Rabiner, "A tutorial on hidden Markov models", Proc. IEEE 1989 (scaled forward pass).
"""

from __future__ import annotations

import abc
import dataclasses
import math
import string
from typing import Any, Callable, Sequence

import numpy as np

from mini_flows.checks import check_positive_int
from mini_flows.data.text import pad_sequences

ALPHABET = string.ascii_lowercase + string.digits + string.ascii_uppercase
"""Characters used by ``HMMSource.decode``: token i prints as ALPHABET[i]."""


def categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (..., K) by inverse CDF: ints of shape (...).

    A category of probability zero is never drawn: u is uniform on (0, 1] and each CDF row is
    divided by its last entry, so it ends at exactly 1.
    """
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / cdf[..., -1:]
    u = 1.0 - rng.random(probs.shape[:-1])
    return (cdf < u[..., None]).sum(axis=-1)


def sample_chain(rng: np.random.Generator, n: int, initial: np.ndarray, transition: np.ndarray,
                 length_probs: np.ndarray, emit: Callable[[np.ndarray], np.ndarray], step_shape: tuple[int, ...] = (),
                 dtype: Any = np.int64) -> list[np.ndarray]:
    """n runs of a hidden Markov chain: lengths T ~ length_probs, states s_0 ~ initial and
    s_t ~ transition[s_{t-1}], and ``emit(s_t)`` : (n, *step_shape) (which draws from ``rng``
    itself) at every step up to the longest T. Returns the n sequences, each (T_i, *step_shape)
    of ``dtype``."""
    lengths = categorical(rng, np.broadcast_to(length_probs, (n, len(length_probs))))
    states = categorical(rng, np.broadcast_to(initial, (n, len(initial))))
    emitted = []
    for _ in range(int(lengths.max(initial=0))):
        emitted.append(emit(states))
        states = categorical(rng, transition[states])
    runs = np.stack(emitted, axis=1).astype(dtype) if emitted else np.zeros((n, 0, *step_shape), dtype)
    return [runs[i, : lengths[i]] for i in range(n)]


def forward_log_likelihood(
    log_emission: np.ndarray, lengths: np.ndarray, initial: np.ndarray, transition: np.ndarray
) -> np.ndarray:
    """log p(x_{1:T_n}) of N padded sequences under a Markov chain of S hidden states (forward algorithm).

    With alpha_1 = pi, c_t = sum_s alpha_t(s) p(x_t | s), alpha_{t+1} = (alpha_t * p(x_t | .) / c_t) A,
    log p(x_{1:T}) = sum_{t <= T} log c_t. Each p(x_t | .) is shifted by its maximum over states
    before exponentiation, so log-likelihoods far below -700 stay exact.

    Parameters
    ----------
    log_emission : (N, T_max, S), log p(x_{n,t} | s); may hold -inf; steps t >= lengths[n] are ignored
    lengths : (N,) ints in [0, T_max]
    initial : (S,), pi
    transition : (S, S), A[i, j] = p(s_{t+1} = j | s_t = i)

    Returns
    -------
    (N,) float64 log-likelihoods in nats; -inf for a sequence of probability zero
    """
    n, t_max, s = log_emission.shape
    alpha = np.broadcast_to(initial, (n, s))
    total = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(t_max):
            active = t < lengths
            shift = log_emission[:, t].max(axis=1)
            shift = np.where(np.isfinite(shift), shift, 0.0)
            joint = alpha * np.exp(log_emission[:, t] - shift[:, None])
            c = joint.sum(axis=1)
            total = total + np.where(active, np.log(c) + shift, 0.0)
            posterior = joint / np.where(c > 0, c, 1.0)[:, None]
            alpha = np.where(active[:, None], posterior @ transition, alpha)
    return total


def check_stochastic(name: str, p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``p`` as float64 of the given shape with non-negative finite rows summing to 1, or ValueError."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-9):
        raise ValueError(f"{name} must hold non-negative probabilities whose last axis sums to 1")
    return p


def check_length_probs(length_probs: np.ndarray) -> np.ndarray:
    """``length_probs`` (T_max + 1,) as float64 probabilities of T = 0..T_max with p(0) = 0, or ValueError."""
    if np.ndim(length_probs) != 1:
        raise ValueError("length_probs must be a 1-D array indexed by the length T")
    lengths = check_stochastic("length_probs", length_probs, np.shape(length_probs))
    if lengths[0] != 0:
        raise ValueError("length_probs[0] must be 0: the source has no empty sequences")
    return lengths


def as_token_arrays(sequences: Sequence[Any], vocab_size: int) -> list[np.ndarray]:
    """Each sequence as a 1-D int64 array; TypeError for non-integers, ValueError for values outside
    [0, vocab_size) or a sequence that is not 1-D."""
    arrays = []
    for n, seq in enumerate(sequences):
        a = np.asarray(seq)
        a = a.astype(np.int64) if a.size == 0 else a
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"sequence {n} must hold integer tokens, got {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"sequence {n} must be 1-D, got shape {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= vocab_size):
            raise ValueError(f"sequence {n} has tokens outside [0, {vocab_size}): values in [{a.min()}, {a.max()}]")
        arrays.append(a.astype(np.int64))
    return arrays


def uniform_lengths(min_length: int, max_length: int) -> np.ndarray:
    """p(T) uniform on [min_length, max_length], as an array (max_length + 1,) indexed by T."""
    check_positive_int("min_length", min_length)
    if not isinstance(max_length, int) or max_length < min_length:
        raise ValueError(f"max_length must be an integer >= min_length={min_length}, got {max_length!r}")
    probs = np.zeros(max_length + 1)
    probs[min_length:] = 1.0 / (max_length - min_length + 1)
    return probs


def poisson_lengths(mean: float, min_length: int, max_length: int) -> np.ndarray:
    """p(T) Poisson(mean) truncated to [min_length, max_length] and renormalised: (max_length + 1,)."""
    if not (math.isfinite(mean) and mean > 0):
        raise ValueError(f"mean must be a positive number, got {mean!r}")
    support = uniform_lengths(min_length, max_length) > 0
    t = np.arange(max_length + 1)
    log_p = t * math.log(mean) - mean - np.array([math.lgamma(k + 1) for k in t])
    p = np.where(support, np.exp(log_p - log_p[support].max()), 0.0)
    return p / p.sum()


class MarkovChainSource(abc.ABC):
    """What the HMM and chord sources share: lengths T ~ ``length_probs``, hidden states
    s_1 ~ ``initial``, s_{t+1} ~ ``transition[s_t]``, and one emission per step (``emit``) of
    shape ``step_shape`` and dtype ``step_dtype``."""

    initial: np.ndarray
    transition: np.ndarray
    length_probs: np.ndarray
    step_shape: tuple[int, ...] = ()
    step_dtype: Any = np.int64

    @abc.abstractmethod
    def emit(self, rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
        """One step's emissions (n, *step_shape) for hidden states (n,), drawn from ``rng``."""

    @property
    def max_length(self) -> int:
        """The longest length with p(T) > 0."""
        return int(np.flatnonzero(self.length_probs)[-1])

    @property
    def mean_length(self) -> float:
        """E[T]."""
        return float(np.arange(len(self.length_probs)) @ self.length_probs)

    def sample(self, n: int, seed: int) -> list[np.ndarray]:
        """n sequences drawn from ``seed``: a list of arrays (T_i, *step_shape) of ``step_dtype``."""
        check_positive_int("n", n, minimum=0)
        rng = np.random.default_rng(seed)
        return sample_chain(rng, n, self.initial, self.transition, self.length_probs,
                            lambda states: self.emit(rng, states), self.step_shape, self.step_dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class HMMSource(MarkovChainSource):
    """A hidden Markov character source with a length distribution.

    Attributes
    ----------
    initial : (S,), pi(s) = p(s_1 = s)
    transition : (S, S), A[i, j] = p(s_{t+1} = j | s_t = i)
    emission : (S, V), B[s, v] = p(x_t = v | s_t = s)
    length_probs : (T_max + 1,), p(T) indexed by T, with p(0) = 0 (no empty sequences)

    ``sample(n, seed)`` gives int64 token sequences (T_i,) in [0, V).
    """

    initial: np.ndarray
    transition: np.ndarray
    emission: np.ndarray
    length_probs: np.ndarray

    def __post_init__(self) -> None:
        if np.ndim(self.initial) != 1:
            raise ValueError("initial must be a 1-D array")
        s = np.asarray(self.initial).shape
        v = np.asarray(self.emission).shape[-1:]
        object.__setattr__(self, "initial", check_stochastic("initial", self.initial, s))
        object.__setattr__(self, "transition", check_stochastic("transition", self.transition, s * 2))
        object.__setattr__(self, "emission", check_stochastic("emission", self.emission, s + v))
        object.__setattr__(self, "length_probs", check_length_probs(self.length_probs))

    @property
    def vocab_size(self) -> int:
        """V, the number of characters."""
        return self.emission.shape[1]

    def emit(self, rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
        """x_t ~ B[s_t]: tokens (n,)."""
        return categorical(rng, self.emission[states])

    def log_probs(self, sequences: Sequence[Any]) -> np.ndarray:
        """log p(x) = log p(T) + log p(x_{1:T} | T) in nats for each sequence: (N,); -inf where p(x) = 0."""
        arrays = as_token_arrays(sequences, self.vocab_size)
        if not arrays:
            return np.zeros(0)
        tokens, lengths = pad_sequences(arrays, 0)
        with np.errstate(divide="ignore"):
            log_b = np.log(self.emission.T)
            log_t = np.log(np.append(self.length_probs, 0.0))
        log_length = log_t[np.minimum(lengths, len(self.length_probs))]
        return log_length + forward_log_likelihood(log_b[tokens], lengths, self.initial, self.transition)

    def log_prob(self, sequence: Sequence[int] | np.ndarray) -> float:
        """log p(x) in nats of one sequence (T,), including log p(T)."""
        return float(self.log_probs([sequence])[0])

    def nll_bits_per_char(self, sequences: Sequence[Any]) -> float:
        """The source's own NLL on ``sequences``: sum_i -log2 p(x_i) / sum_i T_i (bits per character)."""
        if len(sequences) == 0:
            raise ValueError("nll_bits_per_char needs at least one sequence")
        log_p = self.log_probs(sequences)
        return float(-log_p.sum() / math.log(2) / sum(len(s) for s in sequences))

    def entropy_bits_per_char(self, n: int, seed: int) -> tuple[float, float]:
        """Monte Carlo estimate of the source's entropy per character, E[-log2 p(x)] / E[T], from n
        samples with exact log p(x); returns (estimate, standard error) in bits."""
        check_positive_int("n", n, minimum=2)
        bits = -self.log_probs(self.sample(n, seed)) / math.log(2)
        return float(bits.mean() / self.mean_length), float(bits.std(ddof=1) / math.sqrt(n) / self.mean_length)

    def decode(self, tokens: Sequence[int] | np.ndarray) -> str:
        """A readable string for tokens (T,): token i prints as ALPHABET[i] (needs V <= 62)."""
        (a,) = as_token_arrays([tokens], min(self.vocab_size, len(ALPHABET)))
        return "".join(ALPHABET[i] for i in a)


def make_hmm(
    seed: int,
    n_states: int = 6,
    vocab_size: int = 20,
    min_length: int = 8,
    max_length: int = 64,
    emissions_per_state: int = 3,
    concentration: float = 0.3,
) -> HMMSource:
    """A random HMM source with structure: each state emits only ``emissions_per_state`` characters
    (Dirichlet(1) weights over a random subset), transition rows are Dirichlet(``concentration``)
    (small values give peaked, predictable dynamics), pi is Dirichlet(1), and T is uniform on
    [min_length, max_length]. Drawn with ``numpy.random.default_rng(seed)``."""
    check_positive_int("n_states", n_states)
    check_positive_int("vocab_size", vocab_size, minimum=2)
    check_positive_int("emissions_per_state", emissions_per_state)
    if emissions_per_state > vocab_size:
        raise ValueError(f"emissions_per_state={emissions_per_state} exceeds vocab_size={vocab_size}")
    if not (math.isfinite(concentration) and concentration > 0):
        raise ValueError(f"concentration must be a positive number, got {concentration!r}")
    lengths = uniform_lengths(min_length, max_length)
    rng = np.random.default_rng(seed)
    initial = rng.dirichlet(np.ones(n_states))
    transition = rng.dirichlet(np.full(n_states, concentration), size=n_states)
    emission = np.zeros((n_states, vocab_size))
    for s in range(n_states):
        emission[s, rng.choice(vocab_size, emissions_per_state, replace=False)] = rng.dirichlet(np.ones(emissions_per_state))
    return HMMSource(initial, transition, emission, lengths)
