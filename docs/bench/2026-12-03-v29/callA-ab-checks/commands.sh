#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main write-waves` (1995d47, 6d9d3ab), then `cargo xtask gpu-bundle`
# of 6d9d3ab; peers, test-cpu and test-emulated removed; bins stripped and gzipped; both benches beside.
# v29 call A: an A/B of main (1995d47) and write-waves (6d9d3ab: write chunks in one wave, each
# block several consecutive chunks, carried counts; chunks after the last taken tie drop their
# ties), then every landing check of write-waves (its test-gpu, test-index, test-pqtopk, demo).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for b in main write-waves; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
B="main write-waves"
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n1000003_k1024_8rows" AB_DIST=uniform,equal,sorted,narrow,llm \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 90 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n100003_k99999_4rows" AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge100k timeout 40 ./run-ab.sh > $OUT/ab-edge100k-index.txt 2>&1
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n100003_k99999_4rows" AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order score" OUT=$OUT/edge100k-score timeout 40 ./run-ab.sh > $OUT/ab-edge100k-score.txt 2>&1
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 long_b1_n131072_k2048" AB_DIST=uniform \
  AB_ARGS="--kernels --order index" OUT=$OUT/table-index timeout 40 ./run-ab.sh > $OUT/ab-table-index.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index edge100k edge100k-score table-index && rm -rf $OUT/edge-index $OUT/edge100k $OUT/edge100k-score $OUT/table-index
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
