#!/usr/bin/env bash
# GPU check of the fused GRPO kernels, in one call on a lent GPU machine (H100 or H200):
#
#     bash scripts/gpu-check.sh            # everything below, about 9 minutes at most
#     bash scripts/gpu-check.sh tests      # or one phase: tests | bench-logits | bench-linear
#
# 1. the gpu-marked tests: compiled Triton kernels (Qwen's 151,936 vocabulary, bf16) and the lean decode loop on
#    CUDA against generate -> $OUT/gpu-tests.log
# 2. benchmarks/bench_loss.py at the GPU shapes (B*T 2k/8k/32k, V 32k/152k, H 1536/3584, forward/backward/full)
#    -> $OUT/bench_loss.csv, $OUT/bench_logits.png, $OUT/bench_linear.png, logs
# Each phase has its own time limit so that one call returns inside the device tool's 10 minutes, keeping what
# it measured (the CSV is written row by row). $OUT defaults to benchmarks/out/gpu.
#
# Installs nothing heavy: the GPU image has torch, triton and transformers, and seedgrpo runs from this
# checkout (PYTHONPATH; the kernels need no compiled extension). The device machine has no network, so pytest
# and liger-kernel, when missing there, come from wheels carried in ./wheels, fetched beforehand on a machine
# with PyPI:  pip download --no-deps -d wheels pytest pluggy iniconfig packaging liger-kernel==0.8.5
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out/gpu}"
PY="${PYTHON:-python3}"
PHASE="${1:-all}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET  # compiled kernels: the interpreter is for CPU tests only
status=0

{
    date -u
    nvidia-smi || true
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

for module in pytest liger_kernel; do
    if ! "$PY" -c "import $module" 2> /dev/null && compgen -G "wheels/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps wheels/*.whl >> "$OUT/env.txt" 2>&1
    fi
    "$PY" -c "import $module" 2> /dev/null || echo "note: $module is not importable here" | tee -a "$OUT/env.txt"
done

bench() {  # bench <name> <seconds> <bench_loss.py arguments...>
    local name=$1 seconds=$2
    shift 2
    timeout "$seconds" "$PY" benchmarks/bench_loss.py --device cuda --csv "$OUT/bench_loss.csv" \
        --plot "$OUT/$name.png" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "note: $name stopped at its ${seconds}s limit; rows so far are in the CSV" | tee -a "$OUT/$name.log"
    return 0
}

if [ "$PHASE" = all ] || [ "$PHASE" = tests ]; then
    timeout 180 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_kernels_gpu.py tests/test_decode.py 2>&1 | tee "$OUT/gpu-tests.log"
    status=${PIPESTATUS[0]}
fi
if [ "$PHASE" = all ] || [ "$PHASE" = bench-logits ]; then
    bench bench_logits 170 --providers ours_logits,liger_triton,torch_eager,torch_compile
fi
if [ "$PHASE" = all ] || [ "$PHASE" = bench-linear ]; then
    bench bench_linear 170 --providers ours_fused_linear,matmuls_only,liger_fused_linear,torch_eager_linear
fi
echo "gpu-check: tests exit status $status; outputs in $OUT"
exit "$status"
