#!/usr/bin/env bash
# CI: every committed PTX compiles for its architecture with NVIDIA's ptxas (from the
# nvidia-cuda-nvcc wheel; no GPU and no CUDA install needed), so a PTX the driver's JIT would
# reject (an instruction its PTX version lacks, say) fails here and not on a user's device.
# Prints each kernel's registers, spills and shared memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/target/ptxas"
if ! ptxas=$(bash "$root/scripts/fetch-ptxas.sh"); then
  echo "WARNING: could not download ptxas (nvidia-cuda-nvcc-cu12 from PyPI): PTX NOT CHECKED"
  exit 0
fi
"$ptxas" --version | tail -1
status=0
for ptx in "$root"/host/ptx/*.ptx; do
  arch=$(grep -m1 '^\.target' "$ptx" | awk '{print $2}' | tr -d ',')
  echo "--- $(basename "$ptx") ($arch)"
  if ! "$ptxas" -arch="$arch" -v "$ptx" -o /dev/null > "$tools/report.txt" 2>&1; then
    grep -E "error" "$tools/report.txt" | head -20
    status=1
    continue
  fi
  # One line per kernel: its registers, and the spills of its own frame.
  python3 - "$tools/report.txt" <<'EOF_PY'
import re, sys
kernel = None
for line in open(sys.argv[1]):
    if m := re.search(r"Compiling entry function '(\w+)'", line):
        kernel, spills = m.group(1), ""
    elif kernel and (m := re.search(r"Function properties for (\w+)", line)):
        own = m.group(1) == kernel
    elif kernel and own and "spill" in line:
        spills = line.strip()
    elif kernel and (m := re.search(r"Used (\d+) registers", line)):
        print(f"  {kernel:24} {m.group(1):>3} registers; {spills}")
        kernel = None
EOF_PY
done
exit $status
