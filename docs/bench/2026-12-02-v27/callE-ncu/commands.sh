#!/usr/bin/env bash
# v27 call E: main b1ae78e (f1f75e9's PTX), bench only: ncu's warp-state samples per SASS instruction of
# pq_select_by_index at n = 1 000 003, k = 1024, equal keys against uniform ones (where do equal keys' 173 µs go?).
cd "$(dirname "$0")"
for f in bin/*.gz; do [ -e "$f" ] && gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
NCU_SAMPLES=1 NCU_KERNELS='^pq_select_by_index$' NCU_TABLE=edge-shapes.json NCU_BENCH_ARGS="--order index" OUT=$OUT \
  ./run-ncu.sh n1000003_k1024_8rows:equal n1000003_k1024_8rows:uniform
echo "all done at $(( $(date +%s) - S )) s"
