#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main bounds-two-warps bounds-bracket (main 9dd13dc = f35dabe's PTX; bounds-two-warps
# cf82597: the threshold bin's two bounds searched by warps 0 and 1 at once; bounds-bracket 74e3df8: also each search inside a
# checked bracket around the inverted linear map, 3 rounds instead of 7); rm bin/test-gpu-main.gz bin/test-gpu-bounds-two-warps.gz.
# v22 call 4: A/B both orders, bounds-bracket's GPU tests, warp samples of bounds-bracket's pq_select_by_index (hub m2c64 uniform).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main bounds-two-warps bounds-bracket"
AB_BUILDS="$B" AB_SHAPES="hub_m2c64_k3020 hub_m4c256_k6300 decode_b1_k2048 hub_m2c64_sq32_k1380 long_b1_n131072_k2048 chunk_sq16_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 250 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="hub_m2c64_k3020 decode_b1_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 100 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
timeout 150 bin/test-gpu-bounds-bracket --test-threads=4 > $OUT/test-bounds-bracket.txt 2>&1
echo "bounds-bracket: rc $? $(grep '^test result' $OUT/test-bounds-bracket.txt)"; grep -E '^test .*FAILED|panicked' $OUT/test-bounds-bracket.txt | head -5
rm -f bin/bench-main bin/bench-bounds-two-warps
mkdir -p $OUT/samples; NCU_SAMPLES=1 NCU_KERNELS='^pq_select_by_index$' NCU_BENCH_ARGS="--order index" OUT=$OUT/samples timeout 60 ./run-ncu.sh hub_m2c64_k3020:uniform > $OUT/ncu-samples.log 2>&1
echo "done at $(( $(date +%s) - S )) s"
