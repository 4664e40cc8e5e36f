#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main hist-flush-pairs dense-metric-const dense-codes-ahead scoring-flush-codes
# (main 022313d, 4ca8de3's PTX).
# v24 call 2: A/B of main and four scoring branches: hist-flush-pairs (histogram flushes by one 64-bit atomic per
# pair of bins), dense-metric-const (pq_score_dense's metric a constant), dense-codes-ahead (on dense-metric-const:
# codes loaded two steps ahead), scoring-flush-codes (the last two merged); both orders; the merged branch's GPU
# tests; ncu per-kernel times of all five on the chunk shapes.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main hist-flush-pairs dense-metric-const dense-codes-ahead scoring-flush-codes"
AB_BUILDS="$B" AB_SHAPES="chunk_sq16_k2048 chunk_sq128_k2048 decode_b1_k2048 decode_b16_k2048 long_b1_n131072_k2048 hub_m2c64_sq32_k1380" AB_ARGS="--kernels" OUT=$OUT/ab timeout 280 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 chunk_sq16_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 90 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
timeout 120 bin/test-gpu-scoring-flush-codes --test-threads=4 > $OUT/test-scoring-flush-codes.txt 2>&1
echo "scoring-flush-codes: rc $? $(grep '^test result' $OUT/test-scoring-flush-codes.txt)"; grep -E '^test .*FAILED|panicked' $OUT/test-scoring-flush-codes.txt | head -5
echo "tests done at $(( $(date +%s) - S )) s"
NCU_KERNELS='^pq_score' NCU_COUNT=3 timeout 120 ./run-ncu.sh chunk_sq16_k2048:uniform chunk_sq128_k2048:uniform decode_b1_k2048:uniform > $OUT/ncu-times.txt 2>&1
echo "ncu done at $(( $(date +%s) - S )) s"
