"""The music experiment's data: which of the paper's columns its table compares with."""

from __future__ import annotations

from mini_flows.experiments.music import DATA_SETS, load
from mini_flows.experiments.settings import Settings


def test_the_synthetic_chords_compare_with_nottingham_for_reference_only(tmp_path):
    data = load(Settings(out=tmp_path, quick=True))
    assert DATA_SETS[data.paper] == "Nottingham" and data.exact is not None
    assert data.paper_note == "paper's Nottingham value in parentheses, for reference only: these are synthetic chords"
