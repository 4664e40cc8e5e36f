#!/usr/bin/env bash
# v21 call 3: a score-order A/B of main (2dae0ef), merge-pad-items8 (00cf98f) and
# merge-pad-items16 (825a2df: MERGE_ITEMS 16, 8 in the first round), and ncu's wavefronts.
# Here: bash scripts/bundle-branches.sh main merge-pad-items8 merge-pad-items16; rm gpu-bundle/bin/test-gpu-*.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
AB_BUILDS="main merge-pad-items8 merge-pad-items16" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048 hub_m4c256_k6300 chunk_sq16_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 250 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab && rm -rf $OUT/ab
NCU_METRICS=SHARED_PIPE NCU_KERNELS='^pq_select$' NCU_COUNT=1 timeout 120 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_sq32_k1380:llm > $OUT/ncu-wavefronts.txt 2>&1
echo "ncu done at $(( $(date +%s) - S )) s"
