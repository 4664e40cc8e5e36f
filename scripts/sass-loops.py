#!/usr/bin/env python3
"""The loops of one kernel's sm_90 machine code, found by their backward branches, without a GPU.

    python3 scripts/sass-loops.py pq_select                # the committed PTX
    python3 scripts/sass-loops.py pq_select --ptx OTHER.ptx
    python3 scripts/sass-loops.py pq_select --show 8600 8890

Each loop prints as `first-last`, its length in instructions and its shared-memory loads (LDS),
stores (STS) and barriers (BAR); a nested loop's range lies inside its parent's. `--show A B`
prints instructions A..B. perf-notes v20 and v21 counted the merge sort's loops this way before
spending device time (a loop's instruction count against another build's). ptxas and nvdisasm
come from NVIDIA's PyPI wheels, as for scripts/sass-report.sh (run it once first).
"""
import argparse
import pathlib
import re
import signal
import subprocess
import sys

# Piped into head, stop quietly.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

root = pathlib.Path(__file__).resolve().parent.parent
args = argparse.ArgumentParser()
args.add_argument("kernel")
args.add_argument("--ptx", default=str(root / "host/ptx/pqtopk_sm90.ptx"))
args.add_argument("--show", nargs=2, type=int, metavar=("FIRST", "LAST"))
a = args.parse_args()
nvdisasm = root / "target/nvdisasm/nvidia/cu13/bin/nvdisasm"
if not nvdisasm.exists():
    sys.exit("no nvdisasm: run `bash scripts/sass-report.sh` once")
ptxas = subprocess.run(["bash", str(root / "scripts/fetch-ptxas.sh")], capture_output=True, text=True, check=True).stdout.strip()
cubin = root / "target/nvdisasm/sass-loops.cubin"
subprocess.run([ptxas, "-arch=sm_90", a.ptx, "-o", str(cubin)], check=True)
listing = subprocess.run([str(nvdisasm), "-c", str(cubin)], capture_output=True, text=True).stdout

instructions, labels, inside = [], {}, False
for line in listing.splitlines():
    section = re.match(r"\s*\.text\.(\S+):", line)
    if section:
        inside = section.group(1) == a.kernel
        continue
    if not inside:
        continue
    label = re.match(r"^(\.L\w+):", line.strip())
    if label:
        labels[label.group(1)] = len(instructions)
        continue
    instruction = re.search(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
    if instruction:
        instructions.append(instruction.group(2))
if not instructions:
    sys.exit(f"no kernel {a.kernel} in {a.ptx}")
if a.show:
    for i in range(a.show[0], min(a.show[1], len(instructions) - 1) + 1):
        print(i, instructions[i])
    sys.exit()
print(f"{a.kernel}: {len(instructions)} instructions")
for last, text in enumerate(instructions):
    branch = re.search(r"BRA\s+(?:`\()?(\.L\w+)", text)
    if branch and labels.get(branch.group(1), last + 1) <= last:
        body = instructions[labels[branch.group(1)] : last + 1]
        count = lambda op: sum(op in b for b in body)
        print(f"loop {labels[branch.group(1)]}-{last}  len {len(body)}  LDS {count('LDS')}  STS {count('STS')}  BAR {count('BAR')}")
