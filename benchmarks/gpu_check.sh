#!/usr/bin/env bash
# The one command for a GPU machine. Results (bench_na_gpu.json/.md, gpu_train_cuda.json/.md
# and logs.tar.gz) go to $OUT (default benchmarks/results/gpu_check).
#
#  1. In parallel, on every core: the CUDA tests of tests/gpu, and one warm-up process per
#     correctness check and benchmark case of benchmarks/bench_na_gpu.py and per training
#     run of benchmarks/gpu_train.py (two steps each). They compile Triton's kernels into
#     its on-disk cache (and flex_attention's into Inductor's), so that compilation does
#     not run one kernel after another inside the timed part below.
#  2. benchmarks/bench_na_gpu.py: the correctness checks, then (once the warm-up processes
#     are done) the benchmark; it exits non-zero if the Triton backend is wrong.
#  3. benchmarks/gpu_train.py: one epoch of every task through `domainvit train`, bf16,
#     timed per step, with the attention calls each backend ran; DDP when there are
#     several GPUs.
#
# Environment: PYTHON (default python3), DOMAINVIT_DATA (the prepared sample data),
# GPU_CHECK_RUNS (comma-separated gpu_train.py runs; default all), GPU_CHECK_SKIP_TESTS=1.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/gpu_check}
RUNS=${GPU_CHECK_RUNS:-smoke,medcls,medseg_macmd,medseg_3d,hsi}
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
status=0

nvidia-smi -L
"$PY" --version
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'gpus', torch.cuda.device_count())"

warm_names=$("$PY" -c "
import sys; sys.path.insert(0, 'benchmarks')
import bench_na_gpu as b
print('\n'.join([n for n, _ in b.CHECKS] + ['deterministic'] + list(b.CASES) + list(b.DIAGNOSTIC_CASES)))")
pids=""
while IFS= read -r name; do
  "$PY" benchmarks/bench_na_gpu.py --warm "$name" >"$LOGS/warm_${name// /_}.log" 2>&1 &
  pids="$pids $!"
done <<<"$warm_names"
"$PY" benchmarks/gpu_train.py --warm-only --device cuda --runs "$RUNS" --out "$WORK/train" \
  >"$LOGS/warm_train.log" 2>&1 &
pids="$pids $!"
test_pid=""
if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
  "$PY" -m pytest -q -p no:cacheprovider tests/gpu >"$LOGS/tests_gpu.log" 2>&1 &
  test_pid=$!
  pids="$pids $test_pid"
fi

"$PY" benchmarks/bench_na_gpu.py --out "$OUT" --budget 420 --wait-pids "$pids" || status=1
if [ -n "$test_pid" ]; then
  wait "$test_pid"; tests=$?
  tail -n 5 "$LOGS/tests_gpu.log"
  [ "$tests" -eq 0 ] || { echo "tests/gpu FAILED (exit $tests)"; status=1; }
fi
wait
tail -n 3 "$LOGS/warm_train.log"

"$PY" benchmarks/gpu_train.py --device cuda --runs "$RUNS" --out "$WORK/train" \
  --results "$OUT" --ddp || status=1

tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs
exit $status
