#!/usr/bin/env bash
# Here: the call-1 bundle (main 5af372b, 74e3df8's PTX); only bench-main is used.
# v23 call 2: warp samples of main's pq_select_by_index (index order) on decode_b1 uniform and hub_m2c64 uniform,
# and of pq_score on decode_b1 uniform.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f 2>/dev/null; done; chmod +x bin/*
mkdir -p /tmp/keep && mv bin/bench-score-keys* bin/bench-best-of-rank512 bin/test-gpu-* /tmp/keep/ 2>/dev/null
S=$(date +%s)
NCU_SAMPLES=1 NCU_KERNELS='^pq_select_by_index$' NCU_BENCH_ARGS="--order index" OUT=$OUT/index timeout 150 ./run-ncu.sh decode_b1_k2048:uniform hub_m2c64_k3020:uniform > $OUT/ncu-samples-index.log 2>&1
NCU_SAMPLES=1 NCU_KERNELS='^pq_score$' NCU_BENCH_ARGS="--order index" OUT=$OUT/score timeout 100 ./run-ncu.sh decode_b1_k2048:uniform > $OUT/ncu-samples-score.log 2>&1
echo "done at $(( $(date +%s) - S )) s"
