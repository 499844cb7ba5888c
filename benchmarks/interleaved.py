"""Median wall times of several calls timed side by side, for the benchmark scripts.

Each call runs once to warm up, then every repeat runs each call once in turn, so a change in the
machine's load falls on all of them alike; the medians are robust to the odd slow call.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable, Hashable, Mapping


def interleaved_medians(calls: Mapping[Hashable, Callable[[], Any]], repeats: int) -> dict[Hashable, float]:
    """Median seconds of each call (``backend.wall_seconds``, which waits for a GPU to finish),
    interleaved, after one warm-up call of each; the keys are ``calls``' own."""
    from mini_flows import backend as B  # here, not above: discrete.py's worker must load its own checkout first

    for call in calls.values():
        call()
    times: dict[Hashable, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(B.wall_seconds(call))
    return {name: statistics.median(t) for name, t in times.items()}


def machine_header() -> str:
    """What a table's timings belong to: the CPU, the BLAS kernel running and its threads
    (``mini_flows.machine``), and NumPy's version."""
    import numpy

    from mini_flows.machine import describe, summary

    return f"{summary(describe())}; NumPy {numpy.__version__}"
