#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/: an A/B of builds of the bench in one call,
# by default bin/bench-main (a base revision's, copied in by hand) and bin/bench-pqtopk (this
# build's), alternating shape by shape over every data family, so that all meet the same device
# state. AB_BUILDS="main branch …" compares bin/bench-main, bin/bench-branch, …; AB_SHAPES="name …"
# picks shapes (default: all of AB_TABLE, default shapes.json); AB_ARGS adds bench arguments (e.g.
# --kernels, for each launch's time, where every build's bench knows it); AB_DIST picks the data
# families (default all). JSON per build and shape in $OUT.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
mkdir -p "$out"
shapes=$(python3 -c "import json; print(' '.join(s['name'] for s in json.load(open('${AB_TABLE:-shapes.json}'))['shapes']))")
for s in ${AB_SHAPES:-$shapes}; do
  for b in ${AB_BUILDS:-main pqtopk}; do
    echo "== $b $s"
    bin/bench-$b --table "${AB_TABLE:-shapes.json}" --shape "$s" --dist "${AB_DIST:-all}" ${AB_ARGS:-} --json "$out/$b-$s.json" 2>&1 | grep -v '^#' | grep -v '^wrote' | tail -12
  done
done
