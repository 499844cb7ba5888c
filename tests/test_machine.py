"""machine.describe names what decides a result's round-off: the CPU, the BLAS kernel, threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy  # noqa: F401 - loads the OpenBLAS whose kernel is read

from mini_flows.machine import blas, cpu_model, describe, summary
from mini_flows.process import openblas_threads


def test_the_description_names_the_cpu_the_blas_kernel_and_its_threads():
    machine = describe()
    assert machine["cpu"] == cpu_model() and machine["cpu"]
    assert machine["cores"] == os.cpu_count()
    library = blas()
    if library["library"] == "OpenBLAS":  # NumPy's wheels ship OpenBLAS; another build names none
        assert library["kernel"] and library["kernel"] in library["config"]
        assert library["threads"] == openblas_threads()[0]
    json.dumps(machine)  # results.json holds it


def test_a_kernel_forced_by_the_environment_is_the_one_named():
    code = "import numpy, json; from mini_flows.machine import describe; print(json.dumps(describe()))"
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    machine = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                        check=True).stdout)
    assert machine["environment"]["OPENBLAS_CORETYPE"] == "Haswell"
    if machine["blas"]["library"] == "OpenBLAS":
        assert machine["blas"]["kernel"] == "Haswell"
        assert summary(machine).endswith("OpenBLAS kernel Haswell, " + (
            f"{machine['blas']['threads']} thread{'s' if machine['blas']['threads'] != 1 else ''} "
            "(forced by OPENBLAS_CORETYPE=Haswell)"))


def test_the_summary_of_a_machine_without_openblas_says_so():
    assert summary({"cpu": "Some CPU", "cores": 4, "blas": {"library": "not OpenBLAS"}, "environment": {}}) == \
        "Some CPU, 4 cores; BLAS not OpenBLAS"
