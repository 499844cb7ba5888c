"""What the command line passes to an experiment: ``Settings``.

An experiment is a function ``run(settings) -> Report`` (``tables``). It trains and evaluates on
the current backend, prints progress while it works (``settings.progress``, whose lines also show
the whole run's time left once the experiment has planned its steps on ``settings.clock``) and
returns a report; the command writes ``results.json`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mini_flows.discrete.diagnostics import frozen_flows, progress_summary
from mini_flows.discrete.flows import SPREAD
from mini_flows.experiments.saved import clear_models, save_model
from mini_flows.nn.tree import Tree
from mini_flows.train import Progress, RunClock


@dataclass(frozen=True)
class Settings:
    """What the command line passes to an experiment.

    out : the folder for results.json and figures (created by the caller).
    seed : seeds every data set, initialisation and noise generator of the run.
    steps : training steps per model (None: the experiment's default).
    quick : a seconds-long run on tiny settings (for tests and a first look).
    data : a user's data file (charlm: text, one sentence per line; music: a pickle, or "chorales"
        for the Bach chorales of music21's corpus, split by their own fixed seed), or None.
    verbose : print progress lines.
    spread : the discrete flows' bound on the spread of their location logits (``build_model``'s
        ``spread``), reached half-way through training and wider before, where an experiment trains
        through ``discrete.flows.with_progress``; None: the paper's plain straight-through gradient.
    clock : the whole run's ``RunClock``: an experiment ``plan``s every training step it will take
        before its first model, and each ``progress`` printer ticks it, for the run's time left.
    models : the results.json entries of the models ``keep_model`` saved, in training order.
    """

    out: Path
    seed: int = 0
    steps: int | None = None
    quick: bool = False
    data: str | None = None
    verbose: bool = True
    spread: float | None = SPREAD
    steps_run: list[int] = field(default_factory=list, compare=False)
    clock: RunClock = field(default_factory=RunClock, compare=False)
    models: list[dict[str, Any]] = field(default_factory=list, compare=False)

    def pick_steps(self, default: int, quick: int) -> int:
        """``steps`` when given, else the experiment's quick or default count; ``steps_run``
        records every count handed out, for results.json."""
        chosen = self.steps if self.steps is not None else quick if self.quick else default
        if chosen not in self.steps_run:
            self.steps_run.append(chosen)
        return chosen

    def say(self, line: str = "") -> None:
        """Print a line of commentary (when verbose)."""
        if self.verbose:
            print(line, flush=True)

    def progress(self, label: str, steps: int, warn_rise: bool = True, unit: str | None = None) -> Progress:
        """The progress printer of one model's ``steps`` training steps, on the run's clock
        (``warn_rise``, and ``unit``, the loss's: see ``Progress``). A discrete flow model's lines
        show its flows' straight-through diagnostics condensed
        (``discrete.diagnostics.progress_summary``), and it warns at the end about any frozen flow
        (``frozen_flows``); other models' extras show as they are (running means, as every number
        of a line)."""
        return Progress(label, steps, self.verbose, clock=self.clock, warn_rise=warn_rise, summary=progress_summary,
                        checks=[frozen_flows], unit=unit)

    def keep_model(self, label: str, model: Any, params: Tree, decoder: dict[str, Any] | None = None) -> None:
        """Save a trained model's checkpoint under ``out``/models and list it in results.json
        (``experiments.saved``; ``decoder``: how its samples read, None for integers). The first
        model of a run removes the checkpoints a previous run left there."""
        if not self.models:
            clear_models(self.out)
        self.models.append(save_model(self.out, len(self.models) + 1, label, model, params, decoder))
