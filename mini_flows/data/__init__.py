"""Data for the experiments: loaders for the users' own corpora and synthetic sources with known
distributions. Produced on the host as NumPy arrays (this package may import NumPy); model code
moves them onto the backend with ``mini_flows.backend.asarray``.

- ``text``: one-sentence-per-line character corpora (Ziegler and Rush 6.1), padded batches.
- ``fixed_length``: text as rows of one length for bipartite flows: sentences padded with an end
  token, or chunks of a stream (Tran et al. 4.4, 4.5).
- ``piano``: polyphonic-music pickles to piano rolls (T, 88) (Ziegler and Rush 6.2).
- ``plain_pickle``: reading a pickle from anywhere as plain data, which ``piano`` does.
- ``chorales``: the Bach chorales from music21's corpus as piano rolls, cached as such a pickle.
- ``hmm``: a hidden-Markov character source with exact log-likelihoods.
- ``chords``: chord-progression piano rolls with exact log-likelihoods.
- ``toy``: Tran et al.'s discretized mixture of Gaussians, Dirichlet tables, addition.
- ``lattice``: Potts and Ising models by Metropolis-Hastings, exact tables on small lattices.
"""

from mini_flows.data.chorales import build_chorales, load_chorales
from mini_flows.data.chords import ChordSource, make_chords
from mini_flows.data.hmm import HMMSource, make_hmm, poisson_lengths, uniform_lengths
from mini_flows.data.lattice import ising_energy, ising_exact, ising_samples, potts_energy, potts_exact, potts_samples
from mini_flows.data.piano import PianoRolls, load_piano, notes_to_roll, roll_to_notes, rolls_from_dict
from mini_flows.data.text import MAX_LENGTH, PAD_ID, UNK_ID, Corpus, Vocab, batches, load_text, pad_sequences
from mini_flows.data.toy import (
    addition_samples,
    dirichlet_table,
    mog_samples,
    mog_table,
    sample_table,
    table_entropy,
)

__all__ = [
    "MAX_LENGTH",
    "PAD_ID",
    "UNK_ID",
    "ChordSource",
    "Corpus",
    "HMMSource",
    "PianoRolls",
    "Vocab",
    "addition_samples",
    "batches",
    "build_chorales",
    "dirichlet_table",
    "ising_energy",
    "ising_exact",
    "ising_samples",
    "load_chorales",
    "load_piano",
    "load_text",
    "make_chords",
    "make_hmm",
    "mog_samples",
    "mog_table",
    "notes_to_roll",
    "pad_sequences",
    "poisson_lengths",
    "potts_energy",
    "potts_exact",
    "potts_samples",
    "roll_to_notes",
    "rolls_from_dict",
    "sample_table",
    "table_entropy",
    "uniform_lengths",
]
