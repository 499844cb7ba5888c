"""mini_flows.process: the BLAS thread count set before NumPy loads, and malloc's reuse of freed memory."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys

import pytest

from mini_flows.process import BLAS_THREAD_VARIABLES, blas_threads, keep_freed_memory

_CLEAN = {"PYTHONPATH": ":".join(sys.path)}


def _run(code: str, env: dict[str, str] | None = None) -> str:
    """``code`` in a fresh interpreter whose environment names no BLAS thread count, plus ``env``."""
    import os

    base = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    return subprocess.run([sys.executable, "-c", code], env={**base, **_CLEAN, **(env or {})}, capture_output=True,
                          text=True, check=True).stdout.split()


def test_blas_threads_defaults_to_one_and_leaves_a_count_the_environment_names():
    code = "import os; from mini_flows.process import blas_threads; print(blas_threads()); " \
           "print(*(os.environ[v] for v in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')))"
    assert _run(code) == ["True", "1", "1", "1"]
    assert _run(code, {"OMP_NUM_THREADS": "4"}) == ["True", "1", "4", "1"]


def test_a_count_passed_overrides_the_environment_before_numpy_loads_and_reaches_blas():
    code = "import os; from mini_flows.process import blas_threads; print(blas_threads(2)); import numpy; " \
           "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])"
    assert _run(code, {"OPENBLAS_NUM_THREADS": "8"}) == ["True", "2", "2"]


def test_the_command_line_flag_sets_the_count_before_numpy_loads():
    code = "import sys; sys.argv = ['mini-flows', 'run', 'xor', '--threads', '3']; import os, mini_flows.cli; " \
           "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    assert _run(code, {"OPENBLAS_NUM_THREADS": "8"}) == ["3", "3"]


def test_once_numpy_is_loaded_nothing_changes():
    import numpy  # noqa: F401  (the test session has it loaded anyway)

    assert blas_threads(2) is False


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_count_is_refused(bad):
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        blas_threads(bad)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.parametrize("mib", [4, 64])  # above glibc's default mmap threshold; above its largest
def test_keep_freed_memory_stops_the_page_faults_of_repeated_large_temporaries(mib):
    import numpy as np

    def faults() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            a = np.ones((mib, 1 << 17))
            del a
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert keep_freed_memory() is True
    faults()  # the first block grows the heap once
    assert faults() < 100  # 20 fresh mmaps would fault 20 * 256 pages a MiB


_LINUX = pytest.mark.skipif(platform.system() != "Linux", reason="the run-time control reads /proc/self/maps")
_AT_TWO = ("import numpy; from mini_flows import process; from mini_flows.process import openblas_threads as n; "
           "[s(2) for _, s in process._openblas_controls()]\n")  # two threads, whatever the machine's cores


@_LINUX
def test_one_blas_thread_sets_one_inside_and_restores_the_count_after():
    code = _AT_TWO + "print(*n())\nwith process.one_blas_thread(): print(*n())\nprint(*n())"
    assert _run(code) == ["2", "1", "2"]


@_LINUX
def test_one_blas_thread_leaves_a_count_the_environment_names():
    assert _run(_AT_TWO + "with process.one_blas_thread(): print(*n())", {"OPENBLAS_NUM_THREADS": "2"}) == ["2"]


@_LINUX
def test_fit_trains_on_one_blas_thread_in_a_script_that_set_nothing():
    code = _AT_TWO + ("from mini_flows.train import fit; seen = []\n"
                      "def loss(params, batch):\n    seen.append(n()[0]); return 0.0, {'w': numpy.zeros(1)}\n"
                      "fit(loss, {'w': numpy.zeros(1)}, lambda step: None, 2); print(*seen, *n())")
    assert _run(code) == ["1", "1", "2"]


_KERNELS = "import numpy; from mini_flows.process import openblas_kernels; print(*openblas_kernels(), sep='|')"


@_LINUX
@pytest.mark.skipif(platform.machine() != "x86_64", reason="OPENBLAS_CORETYPE names x86 kernels")
def test_openblas_kernels_name_the_kernel_running_not_the_cpu():
    """The kernel follows OPENBLAS_CORETYPE (which some machines set), so the name is read from
    OpenBLAS at run time; Prescott is the oldest x86-64 core, which every such CPU runs."""
    native = " ".join(_run(_KERNELS, {"OPENBLAS_CORETYPE": ""})).split("|")
    forced = " ".join(_run(_KERNELS, {"OPENBLAS_CORETYPE": "Prescott"})).split("|")
    assert len(native) == len(forced) >= 1 and all(k.startswith("OpenBLAS ") for k in native + forced)
    assert all(k.rsplit(", kernel ", 1)[1] in ("Prescott", "Katmai") for k in forced)  # Katmai: its DYNAMIC_ARCH name
