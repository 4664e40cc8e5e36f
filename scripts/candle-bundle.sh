#!/usr/bin/env bash
# Builds the candle adapter's GPU test and example for a GPU machine without Rust, into
# gpu-bundle/candle.tar.xz (about 14 MB), with scripts/run-candle.sh beside it. Run after
# `cargo xtask gpu-bundle` (which builds the libcuda stub this extends).
#
# candle links the CUDA libraries by name (cudarc's `dynamic-linking`), which this machine lacks:
# the link goes against stubs with the real sonames (scripts/candle-link-stubs.py) and the CUDA 13
# runtime from the nvcc wheels (scripts/cuda-toolkit.sh); on the GPU machine run-candle.sh puts
# PyTorch's nvidia-* libraries and the carried runtime on LD_LIBRARY_PATH. The first build
# compiles candle's CUDA kernels with nvcc (about 15 minutes on two cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
toolkit=$(bash scripts/cuda-toolkit.sh)
stubs=$root/target/candle-stubs
cudarc=$(cargo metadata --format-version 1 --features pqtopk/candle | python3 -c "
import json, os, sys
packages = json.load(sys.stdin)['packages']
print(next(os.path.dirname(p['manifest_path']) for p in packages if p['name'] == 'cudarc'))")
python3 scripts/candle-link-stubs.py "$cudarc" "$stubs" "$root/target/libcuda-stub/lib64/libcuda.so"
cp "$toolkit/lib/libcudart.so.13" "$stubs/lib64/"
ln -sf libcudart.so.13 "$stubs/lib64/libcudart.so"
export PATH="$toolkit/bin:$PATH" CUDA_COMPUTE_CAP=80 CUDA_LIBRARY_PATH="$stubs" \
  LD_LIBRARY_PATH="$stubs/lib64" LIBRARY_PATH="$stubs/lib64"
executables() {
  cargo "$@" -p pqtopk --features candle --message-format=json | python3 -c "
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get('reason') == 'compiler-artifact' and m.get('executable'):
        print(m['executable'])"
}
# Cargo does not track the stubs: relink our binaries so that they record the current sonames.
cargo clean -q -p pqtopk
out=$(mktemp -d)
mkdir -p "$out/lib"
cp "$(executables test --no-run --test gpu)" "$out/test-gpu-candle"
cp "$(executables build --example candle_decode)" "$out/example-candle-decode"
strip --strip-debug "$out/test-gpu-candle" "$out/example-candle-decode"
cp "$stubs/lib64/libcudart.so.13" "$out/lib/"
mkdir -p gpu-bundle
tar cJf gpu-bundle/candle.tar.xz -C "$out" .
cp scripts/run-candle.sh gpu-bundle/
rm -r "$out"
echo "gpu-bundle/candle.tar.xz ready ($(du -h gpu-bundle/candle.tar.xz | cut -f1)); on the GPU machine: gpu-bundle/run-candle.sh"
