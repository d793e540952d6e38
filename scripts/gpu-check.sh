#!/usr/bin/env bash
# The device check: every GPU figure of the project in one call on a lent H100/H200, in at most 8 minutes of wall
# time, installs included.
#
#     bash scripts/fetch-gpu-wheels.sh          # HERE, with PyPI: wheels the device image lacks -> ./wheels
#     bash scripts/gpu-check.sh                 # ON THE DEVICE (carry: ["wheels"]); outputs under $OUT
#     bash scripts/gpu-check.sh --dry-run       # anywhere: print the plan and the timeouts, run nothing
#     bash scripts/gpu-check.sh tests bench-logits   # only some stages (setup always runs first)
#
# Stages, most important first; each has its own `timeout`, so a cut keeps what the earlier ones wrote under $OUT
# (benchmark CSVs are written row by row):
#   setup          install the carried wheels (deepspeed, liger-kernel, ...) and this checkout (pip -e, without the
#                  C++ extension unless GPU_CHECK_BUILD_EXTENSION=1: answers then use the Python reference)
#   kernel-tests   the kernel and loss test files, unfiltered (tests/test_kernels_*.py, test_policy_family.py,
#                  test_reference_loss.py): every Triton test on CUDA tensors with the compiled kernels
#                  (tests/kernel_device.py), the gpu-marked ones among them (Qwen's vocabulary, fp16 under loss scale)
#   tests          the other gpu-marked tests (lean decode on CUDA, the GPU engine, ...)
#   bench-logits   bench_loss from logits, B*T 8,192 and 32,768 x V 151,936, full fwd+bwd: ours vs Liger's
#                  triton_grpo_loss vs torch; p50 and peak memory
#   bench-linear   fused-linear 8,192 x 151,936 x 3,584: ours vs Liger's chunked loss vs the bare matmuls
#   rows-in-flight benchmarks/bench_rows_in_flight.py when present (the persistent-grid sweep), else a note
#   train-zero3    3 training steps, ZeRO-3 bf16, random model of Qwen2.5-1.5B's shape, hf engine + lean decode
#                  (plain torch bf16 when DeepSpeed does not install there)
#   train-server   generation_mode: server on one GPU: the toy model, trainer + `seedgrpo serve` (two processes),
#                  4 async steps (k = 1) with the weight checksum compared after every push
#   train-vllm     the same with vLLM, when it is importable there (it is not carried: its wheel is 336 MB)
# Without CUDA (or with --dry-run) every stage is skipped with its reason and the exit status is 0.
# $OUT defaults to benchmarks/out/gpu; summary.txt there lists each stage's status and wall time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out/gpu}"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-wheels}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-470}"  # the whole call; each stage also stops at its own limit below
DRY_RUN=0
SELECTED=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) SELECTED+=("$arg") ;;
    esac
done

# name:seconds, in order of importance. The sum stays under BUDGET_S.
STAGES=(setup:60 kernel-tests:150 tests:40 bench-logits:50 bench-linear:40 rows-in-flight:20 train-zero3:60
        train-server:40 train-vllm:10)
STAGE_NAMES=" ${STAGES[*]%%:*} "
for name in "${SELECTED[@]}"; do
    [[ "$STAGE_NAMES" == *" $name "* ]] || { echo "gpu-check: unknown stage '$name' (stages:$STAGE_NAMES)" >&2; exit 2; }
done
mkdir -p "$OUT"
: > "$OUT/summary.txt"
rm -f "$OUT/pythonpath.txt"
START=$(date +%s)

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

selected() {  # setup always runs; the others when no stage is named, or when named
    [ "$1" = setup ] || [ ${#SELECTED[@]} -eq 0 ] || [[ " ${SELECTED[*]} " == *" $1 "* ]]
}

echo "gpu-check plan ($(date -u +%FT%TZ)); budget ${BUDGET_S}s; outputs in $OUT:"
for stage in "${STAGES[@]}"; do
    selected "${stage%%:*}" && printf '  %-15s timeout %4ss\n' "${stage%%:*}" "${stage##*:}"
done

HAVE_CUDA=0
if [ "$DRY_RUN" -eq 0 ] && "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
    HAVE_CUDA=1
fi
if [ "$HAVE_CUDA" -eq 0 ]; then
    reason=$([ "$DRY_RUN" -eq 1 ] && echo "dry run" || echo "no CUDA device")
    for stage in "${STAGES[@]}"; do
        selected "${stage%%:*}" && note "$(printf '%-15s skipped (%s)' "${stage%%:*}" "$reason")"
    done
    exit 0
fi

unset TRITON_INTERPRET  # compiled kernels: the interpreter is for the CPU tests only
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
{
    date -u
    nvidia-smi || true
    "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    git log -1 --oneline 2> /dev/null || true
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

run_stage() {  # run_stage <name> <seconds> <function>: logs to $OUT/<name>.log, one line in summary.txt
    local name=$1 seconds=$2
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - START) ))
    if [ "$left" -lt 10 ]; then
        note "$(printf '%-15s skipped (the call budget of %ss is spent)' "$name" "$BUDGET_S")"
        return
    fi
    [ "$seconds" -gt "$left" ] && seconds=$left
    local began=$(date +%s)
    # A fresh bash per stage (the stage functions are exported): `timeout` then ends it with all its children.
    timeout --kill-after=5 "$seconds" bash -c "$1" > "$OUT/$name.log" 2>&1
    local rc=$? took=$(( $(date +%s) - began ))
    tail -n 25 "$OUT/$name.log"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        note "$(printf '%-15s cut at its %ss limit (%ss); partial results in %s' "$name" "$seconds" "$took" "$OUT")"
    elif [ "$rc" -eq 0 ]; then
        note "$(printf '%-15s ok (%ss)' "$name" "$took")"
    else
        note "$(printf '%-15s failed with exit status %s (%ss); see %s/%s.log' "$name" "$rc" "$took" "$OUT" "$name")"
    fi
}

seconds_of() { local s; for s in "${STAGES[@]}"; do [ "${s%%:*}" = "$1" ] && echo "${s##*:}"; done; }
has() { "$PY" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('$1') else 1)" 2> /dev/null; }  # no import

# ------------------------------------------------------------------------------------------------ stages
stage_setup() {
    # The carried wheels, by name: pip picks, for each, the wheel that fits this Python.
    if compgen -G "$WHEELS/*.whl" > /dev/null; then
        local names name
        names=$(ls "$WHEELS"/*.whl | xargs -n1 basename | cut -d- -f1 | sort -u | tr '\n' ' ')
        echo "installing from $WHEELS: $names"
        # shellcheck disable=SC2086
        if ! "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELS" $names; then
            for name in $names; do  # one by one, so that one missing wheel does not block the others
                "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELS" "$name" || echo "note: $name did not install"
            done
        fi
    else
        echo "note: no wheels in $WHEELS (run scripts/fetch-gpu-wheels.sh where PyPI is reachable)"
    fi
    # This checkout (kernels/ is installed as seedgrpo.kernels, so PYTHONPATH alone does not find it). No GPU stage
    # needs seedgrpo._C (answers fall back to the Python reference), so its CMake build is not spent from the
    # 8 minutes unless GPU_CHECK_BUILD_EXTENSION=1 (then it needs cmake and the carried pybind11).
    local skip=1
    if [ "${GPU_CHECK_BUILD_EXTENSION:-0}" = 1 ]; then
        skip=0
        command -v cmake > /dev/null || { echo "note: no cmake: installing without seedgrpo._C"; skip=1; }
        has pybind11 || { echo "note: no pybind11: installing without seedgrpo._C"; skip=1; }
    fi
    if ! SEEDGRPO_SKIP_EXTENSION=$skip "$PY" -m pip install -q --no-deps --no-build-isolation -e .; then
        # No setuptools/wheel for an editable install: a package of symlinks with kernels/ inside, on PYTHONPATH.
        echo "note: pip install -e . failed: using a symlinked package under $OUT/.pkg instead"
        local pkg="$PWD/$OUT/.pkg" entry
        [[ "$OUT" = /* ]] && pkg="$OUT/.pkg"
        rm -rf "$pkg" && mkdir -p "$pkg/seedgrpo"
        for entry in "$PWD"/seedgrpo/*; do ln -s "$entry" "$pkg/seedgrpo/"; done
        [ -d kernels ] && [ ! -e seedgrpo/kernels ] && ln -s "$PWD/kernels" "$pkg/seedgrpo/kernels"
        echo "$pkg" > "$OUT/pythonpath.txt"
        export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}"
    fi
    # One process for all the import checks (each import of torch costs seconds); fails if seedgrpo.kernels does not.
    "$PY" - <<'CHECK'
import importlib, importlib.util, sys
for name in ("seedgrpo", "seedgrpo.kernels", "seedgrpo._C", "pytest", "deepspeed", "liger_kernel", "vllm"):
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:
        found = False
    print(f"{name}: {'found' if found else 'not importable here'}")
sys.exit(0 if importlib.import_module("seedgrpo.kernels") else 1)
CHECK
}

kernel_test_files() { ls tests/test_kernels_*.py tests/test_policy_family.py tests/test_reference_loss.py; }

stage_kernel_tests() {
    # Unfiltered: with CUDA, conftest.py leaves the interpreter off and the tests put their tensors on the GPU.
    # shellcheck disable=SC2046
    "$PY" -m pytest -q -p no:cacheprovider -rfEs $(kernel_test_files)
}

stage_tests() {
    local files=() file kernel_files
    kernel_files=" $(kernel_test_files | tr '\n' ' ') "
    for file in $(grep -l "mark.gpu" tests/test_*.py); do
        [[ "$kernel_files" == *" $file "* ]] || files+=("$file")  # kernel-tests ran those already
    done
    [ ${#files[@]} -eq 0 ] && { echo "note: no other gpu-marked test files"; return 0; }
    "$PY" -m pytest -q -m gpu -p no:cacheprovider "${files[@]}"
}

stage_bench_logits() {
    local providers=ours_logits,torch_eager
    has liger_kernel && providers=ours_logits,liger_triton,torch_eager
    "$PY" benchmarks/bench_loss.py --device cuda --providers "$providers" --modes full --tokens 8192,32768 \
        --vocab 151936 --dtype bf16 --csv "$OUT/bench_loss.csv" --plot "$OUT/bench_logits.png"
}

stage_bench_linear() {
    local providers=ours_fused_linear,matmuls_only
    has liger_kernel && providers=ours_fused_linear,liger_fused_linear,matmuls_only
    "$PY" benchmarks/bench_loss.py --device cuda --providers "$providers" --modes full --tokens 8192 \
        --vocab 151936 --hidden 3584 --dtype bf16 --csv "$OUT/bench_loss.csv" --plot "$OUT/bench_linear.png"
}

stage_rows_in_flight() {
    if [ ! -f benchmarks/bench_rows_in_flight.py ]; then
        echo "note: benchmarks/bench_rows_in_flight.py is not in this checkout: sweep skipped"
        return 0
    fi
    local args=()
    "$PY" benchmarks/bench_rows_in_flight.py --help 2>&1 | grep -q -- "--csv" && args+=(--csv "$OUT/bench_rows_in_flight.csv")
    "$PY" benchmarks/bench_rows_in_flight.py "${args[@]}"
}

stage_train_zero3() {
    if has deepspeed; then
        "$PY" benchmarks/gpu_train_check.py --out "$OUT" --engine hf
    else
        echo "note: deepspeed is not importable here: plain torch bf16 (fp32 master weights) instead of ZeRO-3"
        "$PY" benchmarks/gpu_train_check.py --out "$OUT" --engine hf --no-deepspeed
    fi
}

stage_train_server() {  # the toy model: checks the server path on CUDA, measures nothing
    "$PY" -m seedgrpo.train --config configs/tiny-cpu.yaml --deepspeed_config null --generation_mode server \
        --async_generation true --max_staleness 1 --vllm_importance_sampling_correction true \
        --server_debug_checksum true --max_steps 4 --progress false --tensorboard false --save_final_model false \
        --output_dir "$OUT/train-server" && tail -n 4 "$OUT/train-server/metrics.jsonl"
}

stage_train_vllm() {
    if ! has vllm; then
        echo "note: vllm is not importable here (not carried: no wheel for this torch fits the carry limit)"
        return 0
    fi
    local ds=()
    has deepspeed || ds=(--no-deepspeed)
    "$PY" benchmarks/gpu_train_check.py --out "$OUT" --engine vllm "${ds[@]}"
}

export PY OUT WHEELS
export -f has kernel_test_files stage_setup stage_kernel_tests stage_tests stage_bench_logits stage_bench_linear \
    stage_rows_in_flight stage_train_zero3 stage_train_server stage_train_vllm
for stage in "${STAGES[@]}"; do
    name=${stage%%:*}
    selected "$name" || continue
    run_stage "$name" "$(seconds_of "$name")" "stage_${name//-/_}"
    if [ "$name" = setup ]; then
        if ! grep -q "^setup *ok" "$OUT/summary.txt"; then
            note "setup did not finish: the other stages need the installed checkout; stopping"
            break
        fi
        [ -f "$OUT/pythonpath.txt" ] && export PYTHONPATH="$(cat "$OUT/pythonpath.txt")${PYTHONPATH:+:$PYTHONPATH}"
    fi
done
note "gpu-check: $(( $(date +%s) - START ))s in all; outputs in $OUT"
grep -q "failed\|did not finish" "$OUT/summary.txt" && exit 1
exit 0
