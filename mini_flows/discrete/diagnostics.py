"""Straight-through health of discrete flows: is each flow still learning, or has it frozen?

A flow's location mu = one_hot(argmax(theta)) learns only through the surrogate Jacobian of
softmax(theta / tau) (section 3.3). That softmax gives the runner-up logit a weight of about
exp(-margin), where a site's location margin, in units of tau, is

    margin = (theta_(1) - theta_(2)) / tau        (the largest logit minus the second largest),

so a flow whose margins run away stops receiving gradient and stops changing: it is frozen,
whatever the loss would gain from moving it. ``frozen_flows`` calls a flow frozen when, at the
end of training, its median margin is above 10 (the runner-up's softmax weight below
e^-10 = 4.5e-5) and its gradient norm has fallen below 1e-4 of its start's. A flow that has
converged to a confident relabelling freezes too: the warning says that a flow can no longer
change, not that it never learnt, and the share of sites it relabels tells the two apart. Per
flow and training step this module measures

    grad            ||g||, the global norm of the flow's gradient tree
    margin_median   the median location margin over the sites the flow maps
    margin_min      the smallest of those margins
    moved           the share of those sites the flow relabels (mu != 0, or sigma != 1 with scale)

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
from typing import Any, Mapping, Sequence

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.discrete.flows import InverseCache
from mini_flows.nn.tree import Tree, flatten

QUANTITIES = ("grad", "margin_median", "margin_min", "moved")
FROZEN_MARGIN = 10.0
FROZEN_RATIO = 1e-4


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


def flow_diagnostics(caches: Mapping[str, InverseCache], grads: Tree) -> dict[str, float]:
    """The four numbers of every flow, {"NAME/grad": ..., "NAME/margin_median": ...,
    "NAME/margin_min": ..., "NAME/moved": ...} in the order of ``caches``, from one training step.

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
            spread = [xp.median(margins), xp.min(margins), xp.mean(relabelled(cache.mu, cache.sigma))]
        else:
            spread = [xp.asarray(math.nan), xp.asarray(math.nan), xp.zeros(())]
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


def settled(history: Mapping[str, Sequence[float]], name: str) -> tuple[float, float]:
    """(median location margin, gradient ratio) of flow ``name`` at the end of training: the mean
    median margin over the last tenth of the steps (at least one), and the mean gradient norm
    there over the mean of the first tenth. Means, since one step's gradient can all but cancel
    (a batch whose straight-through terms sum to 0)."""
    grads, margins = history[f"{name}/grad"], history[f"{name}/margin_median"]
    tenth = max(1, len(grads) // 10)
    return _mean(margins[-tenth:]), _ratio(_mean(grads[-tenth:]), _mean(grads[:tenth]))


def frozen_flows(history: Mapping[str, Sequence[float]], margin: float = FROZEN_MARGIN,
                 ratio: float = FROZEN_RATIO) -> list[str]:
    """Warnings, one per frozen flow, from a ``train.fit`` history with flow diagnostics: a flow
    is frozen when, at the end of training (``settled``), its median location margin is above
    ``margin`` (in units of tau) and its gradient norm below ``ratio`` times its start's. [] when
    none is (or the history has no flow diagnostics)."""
    warnings = []
    for name in flow_names(history):
        median, shrink = settled(history, name)
        if median > margin and shrink < ratio:
            moved = history[f"{name}/moved"][-1]
            warnings.append(f"warning: {name} is frozen (it relabels {100 * moved:.1f}% of sites): median location "
                            f"margin {median:.1f} tau, gradient norm {shrink:.2g} of its start's; the straight-through "
                            "gradient no longer moves it")
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
    """For results.json: {"final": {NAME: {"grad", "margin_median", "margin_min", "moved"} at the
    last step, with "grad_ratio", the gradient ratio ``frozen_flows`` judges}, "warnings":
    ``frozen_flows(history)``}."""
    final = {}
    for name in flow_names(history):
        final[name] = {key: history[f"{name}/{key}"][-1] for key in QUANTITIES}
        final[name]["grad_ratio"] = settled(history, name)[1]
    return {"final": final, "warnings": frozen_flows(history)}
