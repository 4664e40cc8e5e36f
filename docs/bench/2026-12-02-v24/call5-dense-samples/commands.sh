#!/usr/bin/env bash
# Here: the call-3 bundle (main 554bdb7), only bin/bench-pqtopk.
# v24 call 5: warp samples of the landed pq_score_dense on chunk_sq16 and chunk_sq128 (uniform), where a step costs
# ~1.6 µs for ~290 instructions per warp.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
NCU_SAMPLES=1 NCU_KERNELS='^pq_score_dense$' OUT=$OUT timeout 100 ./run-ncu.sh chunk_sq16_k2048:uniform chunk_sq128_k2048:uniform > $OUT/ncu-samples.log 2>&1
echo "done at $(( $(date +%s) - S )) s"
