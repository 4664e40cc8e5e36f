#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main chunks-ranked` (main 73a7c59, chunks-ranked 5aef7d5), then `cargo xtask gpu-bundle`
# of 5aef7d5; peers, test-cpu and test-emulated removed; bins stripped and gzipped; bench-main beside.
# v27 call A: warm-up runs (each build's PTX JIT, ~20 s), an A/B of main and chunks-ranked (= pqtopk) on the
# edge shapes in both orders and on few-row table shapes in both orders (both selections' code changed),
# then every landing check of chunks-ranked.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in main pqtopk; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
AB_BUILDS="main pqtopk" AB_TABLE=edge-shapes.json AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 130 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
echo "edge index A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main pqtopk" AB_TABLE=edge-shapes.json AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order score" OUT=$OUT/edge-score timeout 130 ./run-ab.sh > $OUT/ab-edge-score.txt 2>&1
echo "edge score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main pqtopk" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300" AB_DIST=uniform,llm \
  AB_ARGS="--kernels --order score" OUT=$OUT/table-score timeout 60 ./run-ab.sh > $OUT/ab-table-score.txt 2>&1
echo "table-shape A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index edge-score table-score && rm -rf $OUT/edge-index $OUT/edge-score $OUT/table-score
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
