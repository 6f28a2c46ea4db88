#!/usr/bin/env bash
# The one command for a GPU machine: versions, then the Triton backend's correctness
# checks and benchmarks (benchmarks/bench_na_gpu.py), results under $OUT; before them
# the CUDA tests of tests/gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
nvidia-smi -L
python3 --version
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
python3 -m pytest -q -p no:cacheprovider tests/gpu
python3 benchmarks/bench_na_gpu.py --out "${OUT:-benchmarks/results}"
