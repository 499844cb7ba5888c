"""The papers' tables and figures, one module each; ``mini-flows run NAME`` runs them.

Each experiment is a function ``run(settings) -> Report`` (``settings``, ``tables``). ``EXPERIMENTS`` names
them in the order ``mini-flows list`` shows; modules load on first use, so listing is instant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from mini_flows.experiments.settings import Settings
from mini_flows.experiments.tables import Report


@dataclass(frozen=True)
class Experiment:
    """A named experiment: where in the papers it comes from, a one-line summary, the function
    (``module:function`` under mini_flows.experiments) that runs it, and whether --steps means
    anything to it (training steps; the timed generations per length for ``timing``)."""

    name: str
    source: str
    summary: str
    target: str
    trains: bool = True

    def load(self) -> Callable[[Settings], Report]:
        module, function = self.target.split(":")
        return getattr(importlib.import_module(f"mini_flows.experiments.{module}"), function)


EXPERIMENTS = {e.name: e for e in [
    Experiment("xor", "Tran 3.2", "the XOR table: a flow correlates a factorized base; learnt from samples too",
               "xor:run"),
    Experiment("mog2d", "Tran Fig. 2", "discretized 2-D mixture of 8 Gaussians: factorized base vs one flow",
               "mog2d:run"),
    Experiment("fullrank", "Tran Table 1", "Dirichlet full-rank tables: AR base/flow, factorized base/bipartite flow",
               "fullrank:run"),
    Experiment("addition", "Tran 4.2", "10-digit addition: AR base vs AR flow, bipartite with 1, 2, 4 flows",
               "addition:run"),
    Experiment("potts", "Tran Table 2", "Potts lattices 3x3 and 4x4 by Metropolis-Hastings: AR base vs AR flow",
               "lattice:run_potts"),
    Experiment("potts-nonequilibrium", "Tran Table 2",
               "the Potts lattices after one Metropolis-Hastings sweep from all-0: AR base vs AR flow",
               "lattice:run_potts_nonequilibrium"),
    Experiment("ising", "Tran workshop Table 2", "Ising lattices 4x4 and 5x5, couplings 0.1 to 1.5: AR base vs AR flow",
               "lattice:run_ising"),
    Experiment("ising-nonequilibrium", "Tran workshop Table 2",
               "the Ising lattices after one Metropolis-Hastings sweep from all -1: AR base vs AR flow",
               "lattice:run_ising_nonequilibrium"),
    Experiment("nlsq1d", "Ziegler Fig. 5a,b", "four hand-set NLSq layers make N(0, 1) multimodal", "nlsq:run_1d",
               trains=False),
    Experiment("nlsq2d", "Ziegler Fig. 5c", "5-layer 2-D AF, NLSq vs affine, on a mixture of four Gaussians",
               "nlsq:run_2d"),
    Experiment("charlm", "Ziegler Tables 1, 2",
               "character LM: LSTM vs a bipartite flow, AF/AF, AF/SCF, IAF/SCF, ablations (--data FILE)", "charlm:run"),
    Experiment("music", "Ziegler Table 3",
               "polyphonic piano rolls: LSTM vs the three latent flow priors (--data chorales or FILE)",
               "music:run"),
    Experiment("charflows", "Tran Fig. 3",
               "bipartite flow LMs: bpc vs number of flows, location vs location-scale, width, depth (--data FILE)",
               "charflows:run"),
    Experiment("timing", "Ziegler Fig. 7, Tran Table 3",
               "sampling time vs length: AR LSTM, IAF/SCF, discrete bipartite flow", "timing:run"),
]}

__all__ = ["EXPERIMENTS", "Experiment", "Report", "Settings"]
