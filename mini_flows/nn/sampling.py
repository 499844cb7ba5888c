"""The one sampler of categorical draws: inverse-CDF sampling from explicit uniforms.

    k = #{j : cdf[j] <= u},  cdf[j] = p_0 + ... + p_j,  so that  cdf[k - 1] <= u < cdf[k]

clipped to K - 1 against round-off in cdf[K - 1] (a u just below 1 with probabilities summing to
slightly less). The uniforms come from the caller's generator (``B.rng(seed).random(shape)``), so
a draw is a deterministic function of its inputs, on NumPy and CuPy alike.
"""

from __future__ import annotations

from mini_flows import backend as B
from mini_flows.backend import Array


def categorical_draw(probs: Array, u: Array) -> Array:
    """Tokens (...) drawn from probabilities (..., K) (normalised over the last axis) with uniforms
    u (...) in [0, 1)."""
    xp = B.xp()
    probs = B.value(probs)
    cdf = xp.cumsum(probs, axis=-1)
    return xp.minimum((cdf <= B.value(u)[..., None]).sum(axis=-1), probs.shape[-1] - 1)
