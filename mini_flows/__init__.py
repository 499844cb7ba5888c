"""mini_flows: discrete flows (Tran et al., 2019) and latent normalizing flows for discrete
sequences (Ziegler and Rush, 2019) on NumPy and CuPy, with hand-written backward passes."""

from mini_flows.backend import get_backend, set_backend, to_numpy, use_backend

__all__ = ["get_backend", "set_backend", "to_numpy", "use_backend"]
__version__ = "0.1.0"
