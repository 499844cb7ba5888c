"""One BLAS thread by default: this library's matrix products are small, and on a few cores more
BLAS threads make them several times slower (the demo took minutes instead of a minute on two
shared cores). BLAS fixes its thread count when NumPy loads, so this must run before that."""

from __future__ import annotations

import os
import sys

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> bool:
    """Set each of ``BLAS_THREAD_VARIABLES`` to 1 where the environment does not already set it.

    Returns True if that can still take effect, False (changing nothing) where NumPy is already
    loaded. Importing ``mini_flows`` loads no array library, so a script can call this first.
    """
    if "numpy" in sys.modules:
        return False
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    return True
