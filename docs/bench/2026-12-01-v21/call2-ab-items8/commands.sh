#!/usr/bin/env bash
# v21 call 2: merge-pad-items8's GPU tests, a score-order A/B of main (2dae0ef), merge-pad
# (96bff0d) and merge-pad-items8 (00cf98f: MERGE_ITEMS 8), and ncu's shared-memory wavefronts.
# Here: bash scripts/bundle-branches.sh main merge-pad merge-pad-items8. There: bash gpu-bundle/call2.sh.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
timeout 150 bin/test-gpu-merge-pad-items8 --test-threads=4 > $OUT/test-merge-pad-items8.log 2>&1
echo "merge-pad-items8: rc $? $(grep '^test result' $OUT/test-merge-pad-items8.log)"; grep -E '^test .*FAILED|panicked' $OUT/test-merge-pad-items8.log | head -5
echo "tests done at $(( $(date +%s) - S )) s"
AB_BUILDS="main merge-pad merge-pad-items8" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048 hub_m4c256_k6300" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab && rm -rf $OUT/ab
rm -f bin/test-gpu-*
NCU_METRICS=SHARED_PIPE NCU_KERNELS='^pq_select$' NCU_COUNT=1 timeout 120 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_sq32_k1380:llm > $OUT/ncu-wavefronts.txt 2>&1
echo "ncu done at $(( $(date +%s) - S )) s"
