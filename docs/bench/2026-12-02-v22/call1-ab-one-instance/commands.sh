#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main merge-one-instance (main 130baed = f35dabe's PTX; merge-one-instance a20532f), then the run-ncu.sh with NCU_BENCH_ARGS copied in.
# v22 call 1: score-order A/B of main and merge-one-instance (families that never merge should regain 0.3-0.5 us of pq_select),
# an index-order A/B, warp samples of pq_select in index order on hub_m2c64 llm and uniform, and merge-one-instance's GPU tests.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
AB_BUILDS="main merge-one-instance" AB_SHAPES="hub_m2c64_k3020 hub_m4c256_k6300 decode_b1_k2048 hub_m2c64_sq32_k1380 decode_b64_k1024" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main merge-one-instance" AB_SHAPES="hub_m2c64_k3020 decode_b1_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 100 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
NCU_SAMPLES=1 NCU_KERNELS='^pq_select$' NCU_BENCH_ARGS="--order index" OUT=$OUT timeout 150 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_k3020:uniform > $OUT/ncu-samples.log 2>&1
echo "samples done at $(( $(date +%s) - S )) s"
timeout 200 bin/test-gpu-merge-one-instance --test-threads=4 > $OUT/test-merge-one-instance.log 2>&1
echo "merge-one-instance: rc $? $(grep '^test result' $OUT/test-merge-one-instance.log)"; grep -E '^test .*FAILED|panicked' $OUT/test-merge-one-instance.log | head -5
echo "tests done at $(( $(date +%s) - S )) s"
