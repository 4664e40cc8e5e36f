#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main small-bitmap-2 take-all-direct land-v26 ablate-no-write staged-write`
# (in the staged-write worktree), then `cargo xtask gpu-bundle` of staged-write (5d896ee: land-v26 + the staged
# write); peers, test-cpu and test-emulated removed; bins stripped and gzipped; the A/B benches copied beside.
# v26 call A: A/B of the edge shapes by index (main, take-all-direct, land-v26, ablate-no-write, staged-write = pqtopk)
# and by score, of the short rows (main, land-v26) both orders, then every landing check of staged-write.
# (The edge A/B by index got no further than n1_k1: each fresh build's first run JIT-compiles its PTX, ~20 s,
# and five of them spent its 100 s. Call B reran it.)
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
AB_BUILDS="main take-all-direct land-v26 ablate-no-write pqtopk" AB_TABLE=edge-shapes.json AB_DIST=uniform,equal,sorted \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 100 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
echo "edge index A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main land-v26" AB_TABLE=edge-shapes.json AB_DIST=uniform,equal \
  AB_ARGS="--kernels" OUT=$OUT/edge-score timeout 40 ./run-ab.sh > $OUT/ab-edge-score.txt 2>&1
for order in index score; do
  AB_BUILDS="main land-v26" AB_TABLE=short-rows.json AB_DIST=uniform,equal \
    AB_ARGS="--kernels --order $order" OUT=$OUT/short-$order timeout 70 ./run-ab.sh > $OUT/ab-short-$order.txt 2>&1
done
echo "short-row A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index edge-score short-index short-score && rm -rf $OUT/edge-index $OUT/edge-score $OUT/short-index $OUT/short-score
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
