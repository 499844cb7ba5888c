"""Test configuration: the --backend option, the gpu and autograd markers, Hypothesis profiles.

``--backend strict`` runs the backend-agnostic tests on tests/strict_backend.py, a CPU stand-in
for CuPy that fails where CuPy would (a host array in device arithmetic, an implicit conversion to
NumPy, a routine CuPy lacks); like ``--backend cupy`` it skips the autograd-checked tests.

Profiles (pick with HYPOTHESIS_PROFILE): "dev" (default, few examples), "ci" (derandomized,
bounded, no deadline, no example database), "thorough" (many examples, for a long local run).
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads, where pytest has not loaded it yet) and malloc reuse

import os  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from mini_flows import backend as B  # noqa: E402
from tests import strict_backend  # noqa: E402

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=10, **_COMMON)
settings.register_profile("ci", max_examples=20, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
strict_backend.register()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=(*B.BACKENDS, strict_backend.NAME),
        default="numpy",
        help="array backend for backend-agnostic tests (autograd-checked tests always use numpy); "
        "'strict' is a CPU stand-in for CuPy that fails where CuPy would",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "autograd: compares with autograd, so it runs on NumPy only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("--backend")
    wants_cupy = backend == "cupy"
    gpu_items = [item for item in items if "gpu" in item.keywords]
    reason = B.unavailable("cupy") if gpu_items or wants_cupy else None
    for item in items:
        if "gpu" in item.keywords and reason:
            item.add_marker(pytest.mark.skip(reason=f"GPU test skipped: {reason}"))
        if backend != "numpy" and "autograd" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="autograd differentiates NumPy arrays only; tests/test_gpu.py checks CuPy against NumPy"))
        elif wants_cupy and reason and "gpu" not in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"--backend cupy: {reason}"))


@pytest.fixture(autouse=True)
def _selected_backend(request: pytest.FixtureRequest):
    """Run each test on the backend named by --backend (numpy for autograd-checked tests)."""
    name = "numpy" if "autograd" in request.keywords else request.config.getoption("--backend")
    with B.use_backend(name):
        yield
