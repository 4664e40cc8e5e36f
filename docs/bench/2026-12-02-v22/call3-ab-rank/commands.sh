#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main rank-limit16 rank-unrolled (main 130baed + the run-ncu.sh commit, f35dabe's PTX).
# v22 call 3: A/B of main, rank-unrolled (pairwise ranking four keys at a time) and rank-limit16 (also best_of ranks at
# most 16 comparisons per thread, was 64), both orders; then both branches' GPU tests.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main rank-unrolled rank-limit16"
AB_BUILDS="$B" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 hub_m4c256_k6300 decode_b1_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 150 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
for b in rank-unrolled rank-limit16; do
  timeout 150 bin/test-gpu-$b --test-threads=4 > $OUT/test-$b.txt 2>&1
  echo "$b: rc $? $(grep '^test result' $OUT/test-$b.txt)"; grep -E '^test .*FAILED|panicked' $OUT/test-$b.txt | head -5
done
echo "tests done at $(( $(date +%s) - S )) s"
