#!/usr/bin/env bash
# The candle adapter's GPU test and example, linked here against stub CUDA libraries: at run
# time they need the real libcublas/libcurand (PyTorch's nvidia wheels) and libcudart 13 (carried).
set -uo pipefail
cd "$(dirname "$0")"  # inside gpu-bundle/
mkdir -p candle && tar xJf candle.tar.xz -C candle
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
site=$(python3 -c "import nvidia, os; print(list(nvidia.__path__)[0])")
libs=$(ls -d "$site"/*/lib | tr '\n' ':')
ls "$site"/cublas/lib "$site"/curand/lib 2>/dev/null | tr '\n' ' '; echo
export LD_LIBRARY_PATH="$PWD/candle/lib:$libs${LD_LIBRARY_PATH:-}"
ldd candle/test-gpu-candle | grep -E "cublas|curand|cudart|cuda\.so|not found"
timeout 120 candle/test-gpu-candle --exact candle_tensors_on_the_candle_stream --nocapture 2>&1 | tail -15
timeout 60 candle/example-candle-decode 2>&1 | tail -15
