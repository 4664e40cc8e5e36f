#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main chunks-ranked-80 chunks-ranked` (73a7c59, 5aef7d5, f1f75e9), then
# `cargo xtask gpu-bundle` of f1f75e9; peers, test-cpu and test-emulated removed; bins stripped and gzipped; the other benches beside.
# v27 call C: warm-up runs, an A/B of main 73a7c59, chunks-ranked-80 (5aef7d5: keys held across the look-back,
# 80 registers, 3 blocks/SM) and chunks-ranked (= pqtopk, f1f75e9: keys staged before it, 4 blocks/SM) on the
# large edge shapes in both orders, then every landing check of f1f75e9.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in main chunks-ranked-80 pqtopk; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
for order in index score; do
  AB_BUILDS="main chunks-ranked-80 pqtopk" AB_TABLE=edge-shapes.json AB_SHAPES="n100003_k99999_4rows n1000003_k1024_8rows" \
    AB_DIST=uniform,equal,sorted AB_ARGS="--kernels --order $order" OUT=$OUT/edge-$order timeout 120 ./run-ab.sh > $OUT/ab-edge-$order.txt 2>&1
  echo "edge $order A/B done at $(( $(date +%s) - S )) s"
done
tar czf $OUT/ab.tgz -C $OUT edge-index edge-score && rm -rf $OUT/edge-index $OUT/edge-score
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
