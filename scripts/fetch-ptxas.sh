#!/usr/bin/env bash
# Prints the path of NVIDIA's ptxas from the nvidia-cuda-nvcc wheel (no GPU and no CUDA install
# needed), downloading it into target/ptxas on first use; fails where PyPI cannot be reached.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/target/ptxas"
ptxas="$tools/nvidia/cuda_nvcc/bin/ptxas"
if [ ! -x "$ptxas" ]; then
  mkdir -p "$tools"
  python3 -m pip download -q --no-deps --only-binary=:all: --dest "$tools" "nvidia-cuda-nvcc-cu12==12.9.86" >&2
  (cd "$tools" && python3 -m zipfile -e nvidia_cuda_nvcc_cu12-*.whl .)
  chmod +x "$ptxas"
fi
echo "$ptxas"
