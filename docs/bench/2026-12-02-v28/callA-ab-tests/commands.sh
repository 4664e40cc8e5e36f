#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main index-sort` (0995ab7, b8cf435); each call was
# `run(bash gpu-bundle/callX.sh, carry gpu-bundle)` on one H200.
# v28 call A: an A/B of main (0995ab7) and index-sort (b8cf435: rows past the index bitmap sort
# their taken keys by index in shared memory) on the edge shapes and long_b1 in index order,
# n = 1 M by score as a control, then index-sort's GPU tests (full, not quick).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in main index-sort; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
AB_BUILDS="main index-sort" AB_TABLE=edge-shapes.json AB_SHAPES="n1000003_k1024_8rows n100003_k99999_4rows" \
  AB_DIST=uniform,equal,sorted,llm AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 150 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
echo "edge index A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main index-sort" AB_TABLE=edge-shapes.json AB_SHAPES="n1000003_k1024_8rows" \
  AB_DIST=uniform,equal AB_ARGS="--kernels --order score" OUT=$OUT/edge-score timeout 60 ./run-ab.sh > $OUT/ab-edge-score.txt 2>&1
AB_BUILDS="main index-sort" AB_SHAPES="long_b1_n131072_k2048 decode_b1_k2048" \
  AB_DIST=uniform,equal AB_ARGS="--kernels --order index" OUT=$OUT/table-index timeout 60 ./run-ab.sh > $OUT/ab-table-index.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index edge-score table-index && rm -rf $OUT/edge-index $OUT/edge-score $OUT/table-index
timeout 300 bin/test-gpu-index-sort --test-threads=1 > $OUT/test-gpu.txt 2>&1; echo "test-gpu rc $?"
grep -E "test result|passed|FAILED|panicked" $OUT/test-gpu.txt | tail -8
echo "all done at $(( $(date +%s) - S )) s"
