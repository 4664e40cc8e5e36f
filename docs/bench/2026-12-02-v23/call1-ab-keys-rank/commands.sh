#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main score-keys4 score-keys3 best-of-rank512 (main 5af372b, 74e3df8's PTX).
# v23 call 1: A/B of main, score-keys4 / score-keys3 (pq_score keeps 4 / 3 keys' code loads in flight, was 2)
# and best-of-rank512 (best_of ranks pairwise up to 512 keys: a diagnostic), both orders; then the branches' GPU tests.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main score-keys4 score-keys3 best-of-rank512"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300 long_b1_n131072_k2048 decode_b16_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 240 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="hub_m2c64_k3020 decode_b1_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 120 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
for b in score-keys4 score-keys3 best-of-rank512; do
  timeout 150 bin/test-gpu-$b --test-threads=4 > $OUT/test-$b.txt 2>&1
  echo "$b: rc $? $(grep '^test result' $OUT/test-$b.txt)"; grep -E '^test .*FAILED|panicked' $OUT/test-$b.txt | head -5
  [ $(( $(date +%s) - S )) -gt 480 ] && { echo "stopping tests at $(( $(date +%s) - S )) s"; break; }
done
echo "tests done at $(( $(date +%s) - S )) s"
