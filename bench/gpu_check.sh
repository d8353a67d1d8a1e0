#!/usr/bin/env bash
# Issue 7's GPU checks as one script, for a machine with a CUDA GPU (a device
# session): trainer throughput on the GPU fast path, trials per GPU, and
# cifar_fast's accuracy and training time. Writes its runs under ${OUT:-./gpu-check}.
#   bash bench/gpu_check.sh    (needs RAYSWEEP_DATA_DIR pointing at CIFAR-10)
set -euo pipefail
out="${OUT:-./gpu-check}"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "bench/gpu_check.sh needs a CUDA GPU"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
python -m bench.throughput --model airbench --width 64 --batch-size 1024 --train-size 45000 \
    --rounds 4 --workers 8
python -m bench.gpu_concurrency --concurrency 1 2 4 8
# cifar_fast: its two grid points on 45,000 / 5,000 images, then the best retrained on
# all 50,000 and tested once; --final prints the test accuracy, final.parquet has train_s
python -m pipelines.run cifar_fast --algo grid --gpus-per-trial 1 --cpus-per-trial 8 \
    --storage "$out" --name fast
python -m pipelines.run --final "$out/cifar_fast/fast" --cpus-per-trial 8
python - "$out/cifar_fast/fast/final.parquet" <<'PY'
import sys, pandas as pd
final = pd.read_parquet(sys.argv[1]).iloc[-1]
print(f"cifar_fast final: test_acc {final['test_acc']:.4f} after {final['train_s']:.1f} s of "
      f"training on {final['train_size']} images (target: 0.94 in under 10 s)")
PY
