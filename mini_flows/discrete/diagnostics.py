"""Straight-through health of discrete flows: is each flow still learning, or has it frozen?

A flow's location mu = one_hot(argmax(theta)) learns only through the surrogate Jacobian of
softmax(theta / tau) (section 3.3). That softmax gives the runner-up logit a weight of about
exp(-margin), where a site's location margin, in units of tau, is

    margin = (theta_(1) - theta_(2)) / tau        (the largest logit minus the second largest),

so a flow whose margins run away stops receiving gradient and stops changing: it is frozen,
whatever the loss would gain from moving it. A flow that has converged to a confident, useful
relabelling freezes too, and should: only a frozen flow whose relabelling does nothing is stuck.
``frozen_flows`` warns about those (its docstring has the rule and the numbers behind it). Per
flow and training step this module measures

    grad            ||g||, the global norm of the flow's gradient tree
    margin_median   the median location margin over the sites the flow maps
    margin_min      the smallest of those margins
    moved           the share of those sites the flow relabels (mu != 0, or sigma != 1 with scale)
    varied          the share of those sites whose relabelling (mu, and sigma with scale) is not
                    the commonest one at their position in the batch: 0 for a flow that relabels
                    every site of a position alike (the identity, or a shift the same for every
                    input), which is a relabelling the base can make alone

where a site is one (sequence, position) the flow's eq. 5 maps: batch x D for an autoregressive
flow, batch x its moved positions for a bipartite one. A flow that maps no site (a bipartite flow
on D = 1) has margins NaN and moved 0. ``DiscreteFlowModel.loss_and_grads`` returns these numbers
as its extras, "flow_0/grad", "flow_0/margin_median", ..., so ``train.fit`` records them every
step; ``frozen_flows`` reads a training history and warns about frozen flows,
``progress_summary`` condenses a step's numbers for a progress line, and ``diagnostics_report``
gives the last step's numbers and the warnings for results.json.

Example: ``Progress(label, steps, summary=progress_summary, checks=[frozen_flows])``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.discrete.flows import InverseCache
from mini_flows.nn.tree import Tree, flatten

QUANTITIES = ("grad", "margin_median", "margin_min", "moved", "varied")
FROZEN_MARGIN = 10.0
"""Median location margin (in units of tau) above which a flow is frozen: the runner-up's
softmax weight is below e^-10 = 4.5e-5."""
UNIFORM_SHARE = 0.01
"""Share of varied sites below which a flow relabels every site of a position alike."""


def location_margins(logits: Array, tau: float) -> Array:
    """(largest - second largest logit) / tau along the last axis, in O(K) per site (no sort).

    Inputs: logits : (..., K) float, K >= 2; tau > 0. Returns margins : (...,) >= 0, 0 where the
    largest logit is tied.
    """
    xp = B.xp()
    flat = logits.reshape(-1, logits.shape[-1])
    rows, top = xp.arange(flat.shape[0]), xp.argmax(flat, axis=-1)
    largest = flat[rows, top]
    others = flat.copy()
    others[rows, top] = -xp.inf  # the first maximum only: a tied runner-up gives margin 0
    return ((largest - xp.max(others, axis=-1)) / tau).reshape(logits.shape[:-1])


def relabelled(mu: Array, sigma: Array | None) -> Array:
    """True at sites the flow changes: mu one-hot away from index 0 (no shift) or sigma away from
    index 1 (scale 1).  mu, sigma : (..., K) one-hot (sigma None without scale) -> (...,) bool."""
    moved = mu[..., 0] == 0
    return moved if sigma is None else moved | (sigma[..., 1] == 0)


def _unlike_commonest(one_hot: Array) -> Array:
    """(batch, P, K) one-hot -> (batch, P) bool: True where the site's value is not the commonest
    at its position over the batch (the first of the commonest on ties)."""
    xp = B.xp()
    common = xp.argmax(one_hot.sum(axis=0), axis=-1)  # (P,)
    return xp.argmax(one_hot, axis=-1) != common


def varied(mu: Array, sigma: Array | None) -> Array:
    """True at sites whose relabelling differs from the commonest at their position: mu unlike
    the position's commonest mu over the batch, or sigma unlike its commonest sigma.
    mu, sigma : (batch, P, K) one-hot (sigma None without scale) -> (batch, P) bool."""
    unlike = _unlike_commonest(mu)
    return unlike if sigma is None else unlike | _unlike_commonest(sigma)


def flow_diagnostics(caches: Mapping[str, InverseCache], grads: Tree) -> dict[str, float]:
    """The five numbers of every flow, {"NAME/grad": ..., "NAME/margin_median": ...,
    "NAME/margin_min": ..., "NAME/moved": ..., "NAME/varied": ...} in the order of ``caches``,
    from one training step.

    Inputs: caches : flow name -> that flow's ``InverseCache`` from the step's inverse pass (the
    location logits are read from its straight-through cache, exactly as the softmax saw them);
    grads : the step's gradient tree, holding grads[NAME] for every flow (its norm is summed in
    the gradients' dtype). The numbers are computed on the device and brought to the host in one
    transfer. {} for no flows.
    """
    xp = B.xp()
    rows = []
    for name, cache in caches.items():
        logits, tau = cache.mu_sigma.mu
        margins = location_margins(logits, tau).reshape(-1)
        leaves = [g.reshape(-1) for g in flatten(grads[name]).values()]
        norm = xp.sqrt(sum(xp.dot(g, g).astype("float64") for g in leaves)) if leaves else xp.zeros(())
        if margins.size:
            spread = [xp.median(margins), xp.min(margins), xp.mean(relabelled(cache.mu, cache.sigma)),
                      xp.mean(varied(cache.mu, cache.sigma))]
        else:
            spread = [xp.asarray(math.nan), xp.asarray(math.nan), xp.zeros(()), xp.zeros(())]
        rows.append(xp.stack([xp.asarray(v, dtype="float64") for v in (norm, *spread)]))
    values = B.to_numpy(xp.stack(rows)).tolist() if rows else []
    return {f"{name}/{key}": value for name, row in zip(caches, values) for key, value in zip(QUANTITIES, row)}


def flow_names(numbers: Mapping[str, Any]) -> list[str]:
    """The flows that have diagnostics among the keys of ``numbers`` (extras or a history), in order."""
    names = [key.rpartition("/")[0] for key in numbers if key.endswith("/grad")]
    return [name for name in names if f"{name}/margin_median" in numbers]


def _ratio(last: float, first: float) -> float:
    """last / first gradient norm; 0 when both are 0 (a flow that never had a gradient)."""
    if first > 0:
        return last / first
    return 0.0 if last == 0 else math.inf


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


class Settled(NamedTuple):
    """A flow at the end of training (means over the last tenth of the steps, at least one):
    median location margin in units of tau, share of varied sites, and the gradient norm over
    its mean over the first tenth. Means, since one step's gradient can all but cancel (a batch
    whose straight-through terms sum to 0) and one batch's share of varied sites is noisy."""

    margin: float
    varied: float
    grad_ratio: float


def settled(history: Mapping[str, Sequence[float]], name: str) -> Settled:
    """Flow ``name``'s ``Settled`` numbers from a ``train.fit`` history with flow diagnostics."""
    grads = history[f"{name}/grad"]
    tenth = max(1, len(grads) // 10)
    return Settled(_mean(history[f"{name}/margin_median"][-tenth:]), _mean(history[f"{name}/varied"][-tenth:]),
                   _ratio(_mean(grads[-tenth:]), _mean(grads[:tenth])))


def frozen_flows(history: Mapping[str, Sequence[float]], margin: float = FROZEN_MARGIN,
                 uniform: float = UNIFORM_SHARE) -> list[str]:
    """Warnings, one per stuck flow, from a ``train.fit`` history with flow diagnostics; [] when
    none is (or the history has no flow diagnostics).

    The rule: a flow is stuck when, at the end of training (``settled``), it is frozen, its
    median location margin above ``margin`` = 10 tau (the runner-up's softmax weight below
    e^-10, so the surrogate passes its choices no gradient), AND it relabels every site of a
    position alike, the share of varied sites below ``uniform`` = 1%: it sits at the identity or
    at a shift the same for every input, a relabelling its base makes alone, so it gains nothing
    and the gradient can no longer move it. A frozen flow whose relabelling depends on its input
    has settled on a relabelling that its base could not make; the history cannot say whether that
    one helps, the comparison with the base alone does. The gradient ratio is reported, not
    judged: a flow frozen from its first step keeps a ratio near 1, and a flow that converged
    to a useful relabelling can fall as far as a stuck one (mog2d's MLP flow with the default
    estimator, 3000 steps: 6.8e-4 at seed 2, stuck on mu = 29 at 87 of the 90 values of x1,
    varied 0.01%, margin 14 tau; 2.6e-4 to 3.9e-4 at seeds 0, 1, 3 and 4, settled on useful
    relabellings, varied 49 to 50%, margins 15 to 16 tau).
    """
    warnings = []
    for name in flow_names(history):
        end = settled(history, name)
        if end.margin > margin and end.varied < uniform:
            moved = history[f"{name}/moved"][-1]
            warnings.append(f"warning: {name} is stuck: it relabels every site of a position alike ({100 * moved:.1f}% "
                            f"of sites moved, {100 * end.varied:.1f}% unlike their position's commonest), which its base "
                            f"could do alone, with a median location margin of {end.margin:.1f} tau (gradient norm "
                            f"{end.grad_ratio:.2g} of its start's): the straight-through gradient no longer moves it")
    return warnings


def progress_summary(extras: Mapping[str, float], first: Mapping[str, float]) -> dict[str, float | str]:
    """What a progress line shows of a step's ``extras``, given the first step's: the flows' numbers
    condensed to three, the other extras as they are.

    "grad/start": the smallest ratio over the flows of the gradient norm to its first step's;
    "margin/tau": the largest median location margin over the flows; "moved": the mean share of
    relabelled sites over the flows, in %. The first two are the signs of a frozen flow. Flows
    that map no site are left out.
    """
    names = flow_names(extras)
    flow_keys = {f"{name}/{key}" for name in names for key in QUANTITIES}
    shown: dict[str, float | str] = {key: value for key, value in extras.items() if key not in flow_keys}
    mapping = [name for name in names if not math.isnan(extras[f"{name}/margin_median"])]  # maps some site
    if mapping:
        ratios = [_ratio(extras[f"{n}/grad"], first.get(f"{n}/grad", extras[f"{n}/grad"])) for n in mapping]
        shown["grad/start"] = f"{min(ratios):.2g}"
        shown["margin/tau"] = f"{max(extras[f'{n}/margin_median'] for n in mapping):.1f}"
        shown["moved"] = f"{100 * sum(extras[f'{n}/moved'] for n in mapping) / len(mapping):.1f}%"
    return shown


def diagnostics_report(history: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """For results.json: {"final": {NAME: {"grad", "margin_median", "margin_min", "moved",
    "varied"} at the last step, with "grad_ratio", the gradient ratio of ``settled``},
    "warnings": ``frozen_flows(history)``}."""
    final = {}
    for name in flow_names(history):
        final[name] = {key: history[f"{name}/{key}"][-1] for key in QUANTITIES}
        final[name]["grad_ratio"] = settled(history, name).grad_ratio
    return {"final": final, "warnings": frozen_flows(history)}
