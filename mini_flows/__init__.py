"""mini_flows: discrete flows (Tran et al., 2019) and latent normalizing flows for discrete
sequences (Ziegler and Rush, 2019) on NumPy and CuPy, with hand-written backward passes.

Importing the package loads no array library; its backend functions load on first use, so that
the ``mini-flows`` command can choose BLAS threads before NumPy starts (see ``mini_flows.cli``).
"""

from typing import Any

from mini_flows.version import __version__

_BACKEND_FUNCTIONS = ("get_backend", "set_backend", "to_numpy", "use_backend")
__all__ = ["__version__", *_BACKEND_FUNCTIONS]


def __getattr__(name: str) -> Any:
    if name in _BACKEND_FUNCTIONS:
        from mini_flows import backend

        return getattr(backend, name)
    raise AttributeError(f"module 'mini_flows' has no attribute {name!r}")
