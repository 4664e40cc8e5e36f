#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main index-sort shared-refine` (0995ab7, 7b5950f, 210f088), then
# `cargo xtask gpu-bundle` of 210f088; peers, test-cpu and test-emulated removed; bins stripped and gzipped; the other benches beside.
# v28 call B: an A/B of main (0995ab7), index-sort (7b5950f: pq_select_long_by_index orders long
# rows' taken keys by buckets over their indices) and shared-refine (= pqtopk, 210f088: split rows
# share their first refinement sweep), then every landing check of shared-refine.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in main index-sort pqtopk; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
B="main index-sort pqtopk"
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n1000003_k1024_8rows" AB_DIST=uniform,equal,sorted,narrow \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 80 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n1000003_k1024_8rows" AB_DIST=uniform,equal,narrow \
  AB_ARGS="--kernels --order score" OUT=$OUT/edge-score timeout 60 ./run-ab.sh > $OUT/ab-edge-score.txt 2>&1
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n100003_k99999_4rows" AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge100k timeout 40 ./run-ab.sh > $OUT/ab-edge100k-index.txt 2>&1
echo "edge A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 long_b1_n131072_k2048 hub_m2c64_k3020" AB_DIST=uniform,llm \
  AB_ARGS="--kernels --order index" OUT=$OUT/table-index timeout 60 ./run-ab.sh > $OUT/ab-table-index.txt 2>&1
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020" AB_DIST=uniform,llm \
  AB_ARGS="--kernels --order score" OUT=$OUT/table-score timeout 45 ./run-ab.sh > $OUT/ab-table-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index edge-score edge100k table-index table-score && rm -rf $OUT/edge-index $OUT/edge-score $OUT/edge100k $OUT/table-index $OUT/table-score
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
