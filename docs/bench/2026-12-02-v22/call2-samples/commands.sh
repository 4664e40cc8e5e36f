#!/usr/bin/env bash
# Here: the call-1 bundle (main 130baed, merge-one-instance a20532f); bench-merge-one-instance removed.
# v22 call 2: warp samples of pq_select_by_index (index order) and pq_select (score order) on hub_m2c64 llm and uniform, main.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
rm -f bin/bench-merge-one-instance bin/test-gpu-*
S=$(date +%s)
NCU_SAMPLES=1 NCU_KERNELS='^pq_select_by_index$' NCU_BENCH_ARGS="--order index" OUT=$OUT/index timeout 150 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_k3020:uniform > $OUT/ncu-samples-index.log 2>&1
NCU_SAMPLES=1 NCU_KERNELS='^pq_select$' OUT=$OUT/score timeout 150 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_k3020:uniform > $OUT/ncu-samples-score.log 2>&1
NCU_METRICS=SHARED_PIPE NCU_KERNELS='^pq_select_by_index$' NCU_COUNT=1 NCU_BENCH_ARGS="--order index" timeout 100 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_k3020:uniform > $OUT/ncu-metrics-index.txt 2>&1
echo "done at $(( $(date +%s) - S )) s"
