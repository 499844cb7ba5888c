"""Latent normalizing flows for discrete sequences (Ziegler and Rush, 2019), continuous part.

Bottom to top: scalar transforms (affine, NLSq with its analytic cubic inverse), flow layers over
a vector (AF, IAF, SCF, elementwise) and their stacks, the density model over vectors built on a
stack (``ContinuousFlowModel``: a standard normal base and the stack, ``build_flow_model``), and
the sequence priors AF / AF, AF / SCF, IAF / SCF over latents (batch, T, H). Directions everywhere:
``forward`` maps base to data (sampling, the solve), ``inverse`` maps data to base (density, the
closed-form formula).
"""

from mini_flows.continuous.cubic import nlsq_inverse
from mini_flows.continuous.errors import FlowRangeError
from mini_flows.continuous.layers import AF, IAF, SCF, Elementwise, Flow
from mini_flows.continuous.length import SequenceContext, length_encoding, sequence_context
from mini_flows.continuous.model import ContinuousFlowModel, build_flow_model
from mini_flows.continuous.priors import PRIORS, SequencePrior, build_prior
from mini_flows.continuous.scalar import AffineTransform, NLSq, NLSqTransform
from mini_flows.continuous.stack import FlowStack

__all__ = [
    "AF",
    "IAF",
    "PRIORS",
    "SCF",
    "AffineTransform",
    "ContinuousFlowModel",
    "Elementwise",
    "Flow",
    "FlowRangeError",
    "FlowStack",
    "NLSq",
    "NLSqTransform",
    "SequenceContext",
    "SequencePrior",
    "build_flow_model",
    "build_prior",
    "length_encoding",
    "nlsq_inverse",
    "sequence_context",
]
