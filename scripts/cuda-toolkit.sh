#!/usr/bin/env bash
# Installs NVIDIA's CUDA compiler (nvcc, cicc, the runtime and C++ headers) from PyPI's wheels
# into target/cuda-toolkit, without root and without a GPU, and prints the directory that holds
# `bin/nvcc`. candle's CUDA backend compiles its kernels with nvcc when it builds, so the
# `candle` feature needs it. CUDA 13.0: the PTX it writes (ISA 9.0) loads on drivers >= 580.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/cuda-toolkit"
cuda="$dir/nvidia/cu13"
if [ ! -x "$cuda/bin/nvcc" ] || [ ! -x "$cuda/nvvm/bin/cicc" ]; then
  mkdir -p "$dir/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: --dest "$dir/wheels" \
    "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88" \
    "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85" >&2
  for wheel in "$dir"/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$dir"; done
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/*
fi
echo "$cuda"
