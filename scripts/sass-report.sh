#!/usr/bin/env bash
# Per kernel of the committed sm_90 PTX, the machine instructions that the PTX hides: shared-memory
# compare-and-swap spin loops (64-bit shared-memory min, max and add compile to
# ATOMS.CAST.SPIN.64, which serialize when a block's warps meet one word) and local-memory
# accesses (LDL/STL: spills and arrays moved off registers). No GPU needed: ptxas and nvdisasm
# come from NVIDIA's PyPI wheels (ptxas through scripts/fetch-ptxas.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ptxas=$(bash "$root/scripts/fetch-ptxas.sh")
tools="$root/target/nvdisasm"
nvdisasm="$tools/nvidia/cu13/bin/nvdisasm"
if [ ! -x "$nvdisasm" ]; then
  mkdir -p "$tools"
  python3 -m pip download -q --no-deps --only-binary=:all: --dest "$tools" "nvidia-cuda-nvdisasm==13.5.37"
  (cd "$tools" && python3 -m zipfile -e nvidia_cuda_nvdisasm-*.whl .)
  chmod +x "$nvdisasm"
fi
"$ptxas" -arch=sm_90 "$root/host/ptx/pqtopk_sm90.ptx" -o "$tools/pqtopk_sm90.cubin"
printf '  %-24s %8s %6s %6s\n' kernel cas_spin ldl stl
"$nvdisasm" "$tools/pqtopk_sm90.cubin" 2>/dev/null | awk '
  /^[ \t]*\.text\./ { k = $1; sub(/^\.text\./, "", k); sub(/:$/, "", k); seen[k] = 1 }
  /ATOMS\.CAST\.SPIN/ { cas[k]++ }
  /[ \t]LDL[. ]/ { ldl[k]++ }
  /[ \t]STL[. ]/ { stl[k]++ }
  END { for (k in seen) printf "  %-24s %8d %6d %6d\n", k, cas[k], ldl[k], stl[k] }' | sort
