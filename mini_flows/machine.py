"""The machine a number was measured on: the CPU, the BLAS library and the kernel it runs, threads.

Two machines running the same code on the same seed agree bit for bit only where they do the
same floating-point operations in the same order. NumPy's matrix products go to BLAS, and
OpenBLAS picks a kernel for the CPU it finds (Haswell, SkylakeX, Zen, ...) when it loads, unless
``OPENBLAS_CORETYPE`` names one; kernels sum in different orders, so a training that amplifies
round-off ends elsewhere on another CPU. Every results.json and every benchmark header records
``describe()`` so that a reader can tell such a difference from a change of code.

Example
-------
>>> sorted(describe())
['blas', 'cores', 'cpu', 'environment', 'machine', 'system']
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

from mini_flows.process import BLAS_THREAD_VARIABLES, openblas_functions

KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_VERBOSE", "OPENBLAS_L2_SIZE")  # OpenBLAS reads these at load


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows, else "unknown"."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _text(function: Any) -> str:
    function.restype = ctypes.c_char_p
    return function().decode(errors="replace").strip()


def blas() -> dict[str, Any]:
    """The BLAS NumPy runs: for each OpenBLAS loaded, its kernel (e.g. "SkylakeX"), build
    configuration and thread count; {"library": "not OpenBLAS"} where none is loaded (another
    BLAS, or NumPy not imported yet)."""
    loaded = openblas_functions("openblas_get_corename", "openblas_get_config", "openblas_get_num_threads")
    if not loaded:
        return {"library": "not OpenBLAS"}
    corename, config, threads = loaded[0]
    return {"library": "OpenBLAS", "kernel": _text(corename), "config": _text(config), "threads": int(threads())}


def describe() -> dict[str, Any]:
    """CPU model and core count, operating system and architecture, ``blas()``, and the
    environment variables that choose BLAS's kernel or threads (only those that are set)."""
    watched = KERNEL_VARIABLES + BLAS_THREAD_VARIABLES
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "system": platform.system(), "machine": platform.machine(),
            "blas": blas(), "environment": {name: os.environ[name] for name in watched if name in os.environ}}


def summary(machine: dict[str, Any]) -> str:
    """One line for a table's header: "Intel(R) Xeon(R) Processor, 2 cores; OpenBLAS kernel
    SkylakeX, 1 thread" (plus the kernel variable where one forced it)."""
    cpu = f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores"
    library = machine.get("blas", {})
    if library.get("library") != "OpenBLAS":
        return f"{cpu}; BLAS {library.get('library', 'unknown')}"
    threads = library.get("threads")
    text = f"{cpu}; OpenBLAS kernel {library.get('kernel')}, {threads} thread{'s' if threads != 1 else ''}"
    forced = machine.get("environment", {}).get("OPENBLAS_CORETYPE")
    return text + (f" (forced by OPENBLAS_CORETYPE={forced})" if forced else "")
