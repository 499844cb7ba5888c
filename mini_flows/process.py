"""The process settings that make small-array work fast: BLAS threads and malloc's reuse of memory.

Both change the whole process, not one array, so the library never makes them on import: the
command line, the examples and the benchmarks call ``prepare()`` first, and a script of your own
may too.

BLAS threads. These models' matrix products are small; on a few cores more BLAS threads make
them several times slower (the demo took 511 s with OpenBLAS's default threads on two shared
cores, 78 s with one). BLAS fixes its thread count when NumPy loads, so the count goes into the
environment variables ``BLAS_THREAD_VARIABLES`` before that: by default one thread unless the
environment already names a count, or the count passed (``mini-flows --threads N``), which
overrides the environment.

At run time. A script that imports NumPy before anything of ours has BLAS's threads already
started. ``one_blas_thread()`` sets the count of the OpenBLAS the process has loaded (NumPy's and
SciPy's wheels ship one) to 1 for the duration of a block, through OpenBLAS's own
``openblas_set_num_threads``, and puts the previous count back after; ``train.fit`` and
``latent.evaluate`` run inside it, so a user's script trains at one thread's speed without any
setting, while the user's own code outside those loops keeps its threads. Where the environment
names a count (any of ``BLAS_THREAD_VARIABLES``), the user asked for threads and it does nothing.

Memory. A training step allocates and frees the same few-megabyte arrays (a sequence's stacked
states, their gradients) every step. glibc's malloc serves blocks above a threshold with fresh
``mmap`` pages and hands the top of its heap back to the system once more than a threshold is
free, so each step faults in, and the kernel zeroes, thousands of pages the previous step had
just released: on an LSTM of width 64 over 64 steps of batch 32, about 2,600 page faults a
step and a third of its time. ``keep_freed_memory`` raises both thresholds and gives no block
an mmap of its own, so that malloc reuses those blocks; the process then keeps its peak heap
until it exits. Elsewhere than glibc it does
nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import sys
from typing import Callable, Iterator

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # mallopt's parameter numbers in glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed: blocks up to 32 MiB come from the reusable heap
MMAP_MAX = 0  # and larger ones too: no block gets its own mmap
TRIM_THRESHOLD = 1 << 30  # hand the heap's free top back only beyond 1 GiB
OPENBLAS_AFFIXES = [(prefix, suffix) for prefix in ("", "scipy_") for suffix in ("", "64_", "_64")]  # NumPy's wheels'
OPENBLAS_NAMES = [(f"{prefix}openblas_get_num_threads{suffix}", f"{prefix}openblas_set_num_threads{suffix}")
                  for prefix, suffix in OPENBLAS_AFFIXES]


def blas_threads(threads: int | None = None) -> bool:
    """Set the BLAS thread count before NumPy loads: ``threads`` where given (it overrides the
    environment), else 1 for each of ``BLAS_THREAD_VARIABLES`` the environment leaves unset.

    Returns True if that can still take effect, False (changing nothing) where NumPy is already
    loaded. Importing ``mini_flows`` loads no array library, so a script can call this first.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if "numpy" in sys.modules:
        return False
    for variable in BLAS_THREAD_VARIABLES:
        if threads is None:
            os.environ.setdefault(variable, "1")
        else:
            os.environ[variable] = str(threads)
    return True


def _openblas_libraries() -> list[ctypes.CDLL]:
    """Every OpenBLAS mapped into this process (Linux: read from /proc/self/maps); [] elsewhere, or
    before NumPy has loaded one."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return [ctypes.CDLL(path) for path in sorted(paths)]


def _openblas_string(library: ctypes.CDLL, name: str) -> str | None:
    """The string OpenBLAS's ``openblas_get_<name>`` returns, under whichever prefix and suffix this
    build exports it (``OPENBLAS_AFFIXES``); None where it exports none."""
    for prefix, suffix in OPENBLAS_AFFIXES:
        function = getattr(library, f"{prefix}openblas_get_{name}{suffix}", None)
        if function is not None:
            function.restype = ctypes.c_char_p
            return function().decode(errors="replace").strip()
    return None


def openblas_kernels() -> list[str]:
    """For each OpenBLAS loaded in this process, its build configuration and the kernel it runs,
    as "<openblas_get_config()>, kernel <openblas_get_corename()>" (e.g. "OpenBLAS 0.3.31
    DYNAMIC_ARCH ... Haswell MAX_THREADS=64, kernel SkylakeX"). The kernel is the one chosen at
    load time, after OPENBLAS_CORETYPE: a benchmark names it beside its timings. [] where no
    OpenBLAS is loaded, or off Linux."""
    kernels = []
    for library in _openblas_libraries():
        config, core = _openblas_string(library, "config"), _openblas_string(library, "corename")
        if config is not None or core is not None:
            kernels.append(f"{config or 'OpenBLAS'}, kernel {core or 'unknown'}")
    return kernels


def _openblas_controls() -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """(get, set) of the thread count of every OpenBLAS mapped into this process; [] where none is."""
    controls = []
    for library in _openblas_libraries():
        for get, set_ in OPENBLAS_NAMES:
            if hasattr(library, get) and hasattr(library, set_):
                controls.append((getattr(library, get), getattr(library, set_)))
                break
    return controls


def openblas_threads() -> list[int]:
    """The thread count of each OpenBLAS loaded in this process ([] where none is, or off Linux)."""
    return [get() for get, _ in _openblas_controls()]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block (or, as ``@one_blas_thread()``, the function) with the loaded OpenBLAS on one
    thread, then restore its count; nothing where the environment names a BLAS thread count (the
    user chose one) or no OpenBLAS is loaded. Each use reads /proc/self/maps once, so it wraps
    whole loops (``train.fit``, ``latent.evaluate``), not their steps."""
    controls = [] if any(v in os.environ for v in BLAS_THREAD_VARIABLES) else _openblas_controls()
    counts = [get() for get, _ in controls]
    for _, set_ in controls:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), count in zip(controls, counts):
            set_(count)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed blocks of every size and to keep up to 1 GiB of free heap.

    By default glibc maps each block above a threshold (128 KiB, at most 32 MiB) fresh from the
    system and unmaps it when freed, so every large temporary of a training step or a sampling pass
    pays page faults and zeroing again: at 32 MiB and above (a bipartite Transformer's feed-forward
    activations at batch 64, T = 288) that was a quarter of a sampling pass. Here the threshold
    goes to its 32 MiB maximum and, beyond it, no block is mapped on its own (M_MMAP_MAX = 0).

    Returns True where the settings took effect, False where the C library is not glibc or
    refused them. Safe to call more than once and at any time.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_MMAP_MAX, MMAP_MAX), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([bool(libc.mallopt(parameter, value)) for parameter, value in settings])  # a list: every one is set


def prepare(threads: int | None = None) -> bool:
    """``blas_threads(threads)`` and ``keep_freed_memory()``; returns ``blas_threads``' answer."""
    keep_freed_memory()
    return blas_threads(threads)
