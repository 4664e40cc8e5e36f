#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/: pqtopk's table and the peer pipelines, in one
# run, then the ratios. Writes JSON to ${OUT:-.}.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
bin/bench-pqtopk --table shapes.json --json "$out/pqtopk.json" "$@"
if [ -f peers/peers.py ]; then
  PYTHONUNBUFFERED=1 python3 peers/peers.py --shapes shapes.json --out "$out" || echo "peers failed"
  python3 compare.py "$out/pqtopk.json" "$out/peers.json" || true
fi
