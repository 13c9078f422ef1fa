#!/usr/bin/env bash
# One short GPU check (< 5 minutes): the CUDA-marked tests, then the throughput benchmark on CUDA.
# Usage (on a machine with a GPU, from the repo root): bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
python -m pytest -q -m cuda tests/test_cuda.py
python benchmarks/bench_throughput.py --device cuda --rows 400000 --steps 60
