#!/usr/bin/env bash
# The GPU check: one call of at most 8 minutes, from the repository root, on a machine with an
# NVIDIA GPU (CUDA 12):
#
#     bash benchmarks/gpu.sh
#
#   install        pip install -e '.[test,cuda12]', only where CuPy, pytest or Hypothesis is missing
#   gpu tests      tests/test_gpu.py (every block's forward and backward on CuPy against NumPy) and
#                  tests/experiments/test_gpu_runs.py (every experiment's quick run on CuPy)
#   cupy suite     python -m pytest --backend cupy: the backend-agnostic tests on CuPy
#   benchmark      benchmarks/gpu_step.py: one training step at batch 4096, CuPy against NumPy
#
# Each stage has its own time limit (together 450 s) and the script goes on past a failure; it
# exits non-zero naming every stage that failed or ran out of time. pytest is stopped with SIGINT,
# so a stage that runs out of time still prints the failures it found. CPU-only parts of this
# (the benchmark's NumPy column, the suite's skips) run anywhere; the rest needs the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
export HYPOTHESIS_PROFILE=ci PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-$(command -v python || command -v python3)}
failed=()

stage() {  # stage NAME SECONDS COMMAND...: run COMMAND under a time limit, recording a failure
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (limit ${limit} s): $*"
    timeout -s INT -k 10 "$limit" "$@"
    rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    if [ "$rc" -ne 0 ]; then
        failed+=("$name (exit $rc$([ "$rc" -eq 124 ] && echo ', out of time'))")
    fi
}

if ! "$py" -c "import cupy, pytest, hypothesis, mpmath" 2>/dev/null; then
    stage install 80 "$py" -m pip install -q -e '.[test,cuda12]'
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: no GPU listed"
"$py" -c "import cupy; print('CuPy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" \
    || echo "CuPy does not import: the CuPy tests skip, saying why"

stage "gpu tests" 100 "$py" -m pytest -q -rs tests/test_gpu.py tests/experiments/test_gpu_runs.py
stage "cupy suite" 160 "$py" -m pytest -q -rfE --backend cupy -m "not autograd and not gpu"
stage benchmark 110 "$py" benchmarks/gpu_step.py --batch 4096 --repeats 3 --numpy-repeats 1

if [ "${#failed[@]}" -ne 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "all stages passed"
