#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/: an A/B of two builds of the bench in one call,
# bin/bench-main (a base revision's, copied in by hand) and bin/bench-pqtopk (this build's),
# alternating shape by shape over every data family, so that both meet the same device state.
# AB_SHAPES="name …" picks shapes (default: all of shapes.json). JSON per build and shape in $OUT.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
mkdir -p "$out"
shapes=$(python3 -c "import json; print(' '.join(s['name'] for s in json.load(open('shapes.json'))['shapes']))")
for s in ${AB_SHAPES:-$shapes}; do
  for b in main pqtopk; do
    echo "== $b $s"
    bin/bench-$b --table shapes.json --shape "$s" --dist all --json "$out/$b-$s.json" 2>&1 | grep -v '^#' | grep -v '^wrote' | tail -6
  done
done
