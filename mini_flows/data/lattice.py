"""Potts and Ising models on an L x L square lattice (Tran et al., 2019, section 4.3 and Table 2;
the ICLR 2019 workshop version's Table 2 for Ising), sampled by Metropolis-Hastings.

A configuration x holds one of q states per site; neighbours are above/below and left/right (not
diagonal). With coupling J (temperature folded into J),

    E(x) = -J sum_{(i, j) neighbours} [x_i = x_j],        p(x) = exp(-E(x)) / Z.

Boundary: the papers do not say, so the default is a free (open) boundary: edge sites have fewer
neighbours. ``periodic=True`` wraps the lattice into a torus instead (then L >= 3, so that no pair of
sites is joined twice).

Sampling: ``steps`` sweeps of single-site Metropolis-Hastings, vectorised over n independent chains;
each chain gives one sample (q <= 127: the chains hold their states as int8). The chains start
from independent uniform random configurations (``start="uniform"``), or all from one fixed
configuration, every site in state 0 (``start="fixed"``, a ground state when J > 0: after a few
sweeps the samples still remember it, a non-equilibrium distribution). A sweep visits the sites by
colour class of a greedy graph colouring (the checkerboard for a free boundary): sites of one class
share no edge, so their updates are independent and run in parallel. An update proposes a state
uniformly among all q (the current one included) and accepts with probability
min(1, exp(-(E(x') - E(x)))). Including the current state keeps the chain aperiodic: with q = 2 and
a forced flip, energy-neutral flips are always accepted and parallel sweeps can cycle forever (the
four striped 2 x 2 configurations map onto each other), so the chain would never mix.
The papers' "500 steps of Metropolis-Hastings" is read as 500 sweeps.

Exact entropies: of p itself by a transfer matrix over rows (``potts_entropy``), and of the samples
after one sweep from the fixed start in closed form (``potts_one_sweep_entropy``).

Configurations are ints (..., L, L); a model sees them flattened row-major to (..., L * L), which
is also the axis order of the table ``potts_exact`` returns.

The Ising model with spins s = 2 x - 1 in {-1, +1} and energy -J sum s_i s_j equals the q = 2 Potts
model with coupling 2 J (since s_i s_j = 2 [x_i = x_j] - 1); ``ising_*`` wrap the Potts functions.
"""

from __future__ import annotations

import math

import numpy as np

from mini_flows.checks import check_positive_int

MAX_EXACT_STATES = 2**22
"""The largest q^(L^2) that ``potts_exact`` enumerates."""

MAX_SAMPLED_STATES = 127
"""The largest q that ``potts_samples`` takes (the chains hold their states as int8)."""

STARTS = ("uniform", "fixed")
"""Where ``potts_samples``' chains start: independent uniform random configurations, or all sites
in state 0."""


def _check_lattice(L: int, periodic: bool) -> None:
    check_positive_int("L", L, minimum=3 if periodic else 2)


def _check_coupling(J: float) -> None:
    if isinstance(J, bool) or not isinstance(J, (int, float)) or not math.isfinite(J):
        raise ValueError(f"J must be a finite number, got {J!r}")


def lattice_edges(L: int, periodic: bool = False) -> np.ndarray:
    """The neighbour pairs of an L x L lattice as site indices (E, 2), site (r, c) = r L + c.

    E = 2 L (L - 1) for a free boundary, 2 L^2 for a periodic one.
    """
    _check_lattice(L, periodic)
    site = np.arange(L * L).reshape(L, L)
    right = np.roll(site, -1, axis=1)
    down = np.roll(site, -1, axis=0)
    if periodic:
        pairs = [(site, right), (site, down)]
    else:
        pairs = [(site[:, :-1], right[:, :-1]), (site[:-1], down[:-1])]
    return np.concatenate([np.stack([a.ravel(), b.ravel()], axis=1) for a, b in pairs])


def _neighbours(L: int, periodic: bool) -> np.ndarray:
    """(L^2, 4) neighbour indices of each site, padded with the sentinel index L^2."""
    table = [[] for _ in range(L * L)]
    for i, j in lattice_edges(L, periodic):
        table[i].append(j)
        table[j].append(i)
    return np.array([row + [L * L] * (4 - len(row)) for row in table])


def _colour_classes(neighbours: np.ndarray) -> list[np.ndarray]:
    """Sites grouped so that no two in a group are neighbours (greedy colouring in site order)."""
    sites = len(neighbours)
    colour = np.full(sites + 1, -1)
    for i in range(sites):
        used = set(colour[neighbours[i]])
        colour[i] = next(c for c in range(5) if c not in used)
    return [np.flatnonzero(colour[:sites] == c) for c in range(colour.max() + 1)]


def _agreements(around: np.ndarray, state: np.ndarray) -> np.ndarray:
    """How many of the 4 neighbour slots ``around`` (m, 4, n) hold ``state`` (m, n): int8 (m, n).
    (Four explicit comparisons on contiguous rows: a boolean sum over a short axis is several
    times slower.)"""
    count = np.zeros(state.shape, dtype=np.int8)
    for k in range(around.shape[1]):
        count += around[:, k] == state
    return count


def potts_energy(config: np.ndarray, J: float, *, periodic: bool = False) -> np.ndarray:
    """E(x) = -J sum_{neighbours (i, j)} [x_i = x_j] for configurations ``config`` (..., L, L) of
    integer states: energies (...) as float64."""
    _check_coupling(J)
    config = np.asarray(config)
    if not np.issubdtype(config.dtype, np.integer):
        raise TypeError(f"config must hold integer states, got {config.dtype}")
    if config.ndim < 2 or config.shape[-1] != config.shape[-2]:
        raise ValueError(f"config must have shape (..., L, L), got {config.shape}")
    edges = lattice_edges(config.shape[-1], periodic)
    flat = config.reshape(*config.shape[:-2], -1)
    agree = (flat[..., edges[:, 0]] == flat[..., edges[:, 1]]).sum(axis=-1)
    return -J * agree.astype(np.float64)


def potts_samples(n: int, L: int, q: int, J: float, seed: int, steps: int = 500, *, start: str = "uniform",
                  periodic: bool = False) -> np.ndarray:
    """n configurations (n, L, L) of ints in [0, q) after ``steps`` Metropolis-Hastings sweeps of n
    independent chains, each started from a uniform random configuration (``start="uniform"``) or
    from every site in state 0 (``start="fixed"``); see the module docstring."""
    check_positive_int("n", n, minimum=0)
    _check_lattice(L, periodic)
    check_positive_int("q", q, minimum=2)
    if q > MAX_SAMPLED_STATES:
        raise ValueError(f"q must be <= {MAX_SAMPLED_STATES} (states are held as int8), got {q}")
    _check_coupling(J)
    check_positive_int("steps", steps, minimum=0)
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(map(repr, STARTS))}, got {start!r}")
    rng = np.random.default_rng(seed)
    neighbours = _neighbours(L, periodic)
    classes = _colour_classes(neighbours)
    # sites along axis 0 and chains along axis 1, so that gathering a site's neighbours copies
    # whole rows; the sentinel row -1 (site L^2) matches no state
    first = rng.integers(0, q, size=(L * L, n), dtype=np.int8) if start == "uniform" else np.zeros((L * L, n), np.int8)
    x = np.concatenate([first, np.full((1, n), -1, np.int8)])
    accept_prob = np.exp(J * np.arange(-4, 5)).astype(np.float32)  # exp(-(E(x') - E(x))) at gains -4..4
    for _ in range(steps):
        for sites in classes:
            around = x[neighbours[sites]]  # (m, 4, n)
            current = x[sites]
            proposal = rng.integers(0, q, size=current.shape, dtype=np.int8)
            gain = _agreements(around, proposal) - _agreements(around, current)
            accept = rng.random(current.shape, dtype=np.float32) < accept_prob[gain + 4]
            x[sites] = np.where(accept, proposal, current)
    return x[:-1].T.reshape(n, L, L).astype(np.int64)


def potts_exact(L: int, q: int, J: float, *, periodic: bool = False) -> np.ndarray:
    """The exact Potts distribution by enumeration: probabilities of shape (q,) * (L * L), indexed by
    the row-major sites; for q^(L^2) <= MAX_EXACT_STATES (e.g. 3 x 3 with q <= 5, 4 x 4 with q = 2)."""
    _check_lattice(L, periodic)
    check_positive_int("q", q, minimum=2)
    _check_coupling(J)
    sites = L * L
    if q**sites > MAX_EXACT_STATES:
        raise ValueError(f"q^(L^2) = {q}^{sites} configurations exceed the enumeration limit of {MAX_EXACT_STATES}")
    index = np.arange(q**sites)
    state = [(index // q ** (sites - 1 - i)) % q for i in range(sites)]
    agree = sum((state[i] == state[j]).astype(np.int64) for i, j in lattice_edges(L, periodic))
    log_weight = J * agree
    weight = np.exp(log_weight - log_weight.max())
    return (weight / weight.sum()).reshape((q,) * sites)


MAX_ROW_STATES = 4096
"""The largest q^L (states of one lattice row) that ``potts_entropy`` takes."""


def potts_entropy(L: int, q: int, J: float) -> float:
    """The exact entropy H(p) = log Z - J E[A] in nats of the free-boundary Potts model, where
    A(x) = sum_{neighbours} [x_i = x_j], by a transfer matrix over the q^L states of a row
    (q^L <= MAX_ROW_STATES, e.g. 4 x 4 with q <= 8, 5 x 5 with q <= 5): with r_1 .. r_L the rows,

        Z = sum_{r_1 .. r_L} prod_k w(r_k) prod_k T(r_k, r_{k+1}),
        w(r) = exp(J h(r)),  T(r, r') = exp(J v(r, r')),

    h counting a row's agreeing horizontal pairs and v the agreeing vertical pairs of two rows;
    E[A] = d log Z / dJ is carried alongside Z by the product rule (no differencing)."""
    _check_lattice(L, False)
    check_positive_int("q", q, minimum=2)
    _check_coupling(J)
    if q**L > MAX_ROW_STATES:
        raise ValueError(f"q^L = {q}^{L} row states exceed the transfer-matrix limit of {MAX_ROW_STATES}")
    rows = np.stack(np.unravel_index(np.arange(q**L), (q,) * L), axis=-1)  # (q^L, L)
    h = (rows[:, 1:] == rows[:, :-1]).sum(axis=1).astype(np.float64)
    v = (rows[:, None, :] == rows[None, :, :]).sum(axis=-1).astype(np.float64)
    w, T = np.exp(J * h), np.exp(J * v)
    z, dz, log_scale = w, h * w, 0.0  # Z and dZ/dJ restricted to each last row, over a common scale
    for _ in range(L - 1):
        z, dz = (z @ T) * w, ((dz @ T) + (z @ (T * v)) + (z @ T) * h) * w
        c = z.sum()
        z, dz, log_scale = z / c, dz / c, log_scale + math.log(c)
    log_z = log_scale + math.log(z.sum())
    return float(log_z - J * dz.sum() / z.sum())


MAX_NEIGHBOUR_STATES = 2**16
"""The largest q^4 (states of a site's four neighbours) that ``potts_one_sweep_entropy`` takes."""


def _update_probabilities(J: float, agree: np.ndarray, q: int) -> np.ndarray:
    """One Metropolis-Hastings update of a site in state 0: the probabilities (..., q) of its new
    state, from ``agree`` (..., q), how many of its neighbours hold each state. A proposal a
    (uniform over all q) is accepted with min(1, exp(J (agree[a] - agree[0])))."""
    move = np.minimum(1.0, np.exp(J * (agree - agree[..., :1]))) / q
    move[..., 0] = 0.0
    move[..., 0] = 1.0 - move.sum(axis=-1)  # staying: proposing 0, or any rejected proposal
    return move


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropies in nats of the distributions p (..., q) along the last axis."""
    return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)


def potts_one_sweep_entropy(L: int, q: int, J: float) -> float:
    """The exact entropy in nats of ``potts_samples(n, L, q, J, seed, steps=1, start="fixed")`` (free
    boundary): one sweep from every site in state 0. The sweep updates the first checkerboard
    colour (r + c even), whose neighbours all still hold 0, so those sites come out independent,
    each distributed as ``_update_probabilities`` with agreements (degree, 0, ..., 0); then the
    second colour, each site independently given its neighbours s, which are all of the first
    colour. So H = sum_first H(x_i) + sum_second E_s H(x_j | s), the expectation over the q^degree
    (at most q^4) states of s."""
    _check_lattice(L, False)
    check_positive_int("q", q, minimum=2)
    _check_coupling(J)
    if q**4 > MAX_NEIGHBOUR_STATES:
        raise ValueError(f"q^4 = {q}^4 neighbour states exceed the limit of {MAX_NEIGHBOUR_STATES}")
    neighbours = _neighbours(L, False)
    first, second = _colour_classes(neighbours)
    degree = (neighbours < L * L).sum(axis=1)
    marginal = {}  # a first-colour site's new-state probabilities (q,), by degree
    for k in set(degree[first].tolist()):
        marginal[k] = _update_probabilities(J, np.array([k] + [0] * (q - 1)), q)
    total = sum(float(_entropy(marginal[degree[i]])) for i in first)
    for j in second:
        around = [marginal[degree[i]] for i in neighbours[j] if i < L * L]
        states = np.stack(np.unravel_index(np.arange(q ** len(around)), (q,) * len(around)), axis=-1)  # (q^k, k)
        weight = np.prod([m[states[:, t]] for t, m in enumerate(around)], axis=0)
        agree = (states[:, :, None] == np.arange(q)).sum(axis=1)  # (q^k, q)
        total += float(weight @ _entropy(_update_probabilities(J, agree, q)))
    return total


def ising_entropy(L: int, J: float) -> float:
    """The exact entropy in nats of the free-boundary Ising model: ``potts_entropy(L, 2, 2 J)``."""
    _check_coupling(J)
    return potts_entropy(L, 2, 2 * J)


def ising_one_sweep_entropy(L: int, J: float) -> float:
    """The exact entropy in nats of ``ising_samples(n, L, J, seed, steps=1, start="fixed")``:
    ``potts_one_sweep_entropy(L, 2, 2 J)``."""
    _check_coupling(J)
    return potts_one_sweep_entropy(L, 2, 2 * J)


def ising_energy(config: np.ndarray, J: float, *, periodic: bool = False) -> np.ndarray:
    """E(s) = -J sum_{neighbours} s_i s_j with s = 2 x - 1, for ``config`` (..., L, L) in {0, 1}."""
    config = np.asarray(config)
    energy = potts_energy(config, J, periodic=periodic)
    if config.size and (config.min() < 0 or config.max() > 1):
        raise ValueError("Ising configurations must hold 0 and 1 (spins -1 and +1)")
    return 2 * energy + J * len(lattice_edges(config.shape[-1], periodic))


def ising_samples(n: int, L: int, J: float, seed: int, steps: int = 500, *, start: str = "uniform",
                  periodic: bool = False) -> np.ndarray:
    """n Ising configurations (n, L, L) in {0, 1} (spin -1 -> 0, +1 -> 1): ``potts_samples`` with
    q = 2 and coupling 2 J (``start="fixed"``: every spin -1 at the start)."""
    _check_coupling(J)
    return potts_samples(n, L, 2, 2 * J, seed, steps, start=start, periodic=periodic)


def ising_exact(L: int, J: float, *, periodic: bool = False) -> np.ndarray:
    """The exact Ising distribution, probabilities (2,) * (L * L): ``potts_exact(L, 2, 2 J)``."""
    _check_coupling(J)
    return potts_exact(L, 2, 2 * J, periodic=periodic)
