#!/usr/bin/env bash
# v20 call 3: merge-v2's GPU tests, a score-order A/B of main, merge-order and merge-v2, the edge
# table, and ncu samples of merge-v2's pq_select on hub m2c64 LLM-like rows.
# Bundle: bash scripts/bundle-branches.sh merge-v2, plus call 1's bench-main, bench-merge-order.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
bin/test-gpu-merge-v2 --test-threads=4 > $OUT/test-merge-v2.log 2>&1
echo "merge-v2: rc $? $(grep '^test result' $OUT/test-merge-v2.log)"; grep -E '^test .*FAILED|panicked' $OUT/test-merge-v2.log | head -5
echo "tests done at $(( $(date +%s) - S )) s"
AB_BUILDS="main merge-order merge-v2" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048 long_b1_n131072_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main merge-order merge-v2" AB_TABLE=edge-shapes.json OUT=$OUT/ab-edge timeout 60 ./run-ab.sh > $OUT/ab-edge.txt 2>&1
echo "edge done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-edge && rm -rf $OUT/ab $OUT/ab-edge
mkdir -p ncu && mv bin/bench-merge-v2 ncu/ && cd ncu && mkdir -p bin && mv bench-merge-v2 bin/ && cp ../shapes.json ../run-ncu.sh . && NCU_SAMPLES=1 NCU_KERNELS='^pq_select$' OUT=$OUT ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_k3020:uniform 2>&1 | tail -3
echo "ncu done at $(( $(date +%s) - S )) s"
