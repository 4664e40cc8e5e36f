#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main score-threads512 best-of-rank128 (main 022313d, 4ca8de3's PTX).
# v24 call 1: A/B of main, score-threads512 (pq_score in 512-thread blocks, one per SM) and best-of-rank128
# (best_of ranks pairwise up to 16 comparisons per thread), both orders; the branches' GPU tests; then warp
# samples of main's pq_score_dense and pq_select on chunk_sq16 (where the ratio to the best peer is lowest).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main score-threads512 best-of-rank128"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300 long_b1_n131072_k2048 decode_b16_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 long_b1_n131072_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 120 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
for b in score-threads512 best-of-rank128; do
  timeout 150 bin/test-gpu-$b --test-threads=4 > $OUT/test-$b.txt 2>&1
  echo "$b: rc $? $(grep '^test result' $OUT/test-$b.txt)"; grep -E '^test .*FAILED|panicked' $OUT/test-$b.txt | head -5
done
echo "tests done at $(( $(date +%s) - S )) s"
mkdir -p /tmp/keep && mv bin/bench-score-threads512 bin/bench-best-of-rank128 bin/test-gpu-* /tmp/keep/
timeout 60 ./run-ncu.sh chunk_sq16_k2048:uniform chunk_sq128_k2048:uniform > $OUT/ncu-times.txt 2>&1
NCU_SAMPLES=1 NCU_KERNELS='^pq_score_dense$' NCU_BENCH_ARGS="--order index" OUT=$OUT/samples timeout 90 ./run-ncu.sh chunk_sq16_k2048:uniform > $OUT/ncu-samples.log 2>&1
NCU_SAMPLES=1 NCU_KERNELS='^pq_select_by_index$' NCU_BENCH_ARGS="--order index" OUT=$OUT/samples timeout 60 ./run-ncu.sh chunk_sq16_k2048:uniform >> $OUT/ncu-samples.log 2>&1
echo "ncu done at $(( $(date +%s) - S )) s"
