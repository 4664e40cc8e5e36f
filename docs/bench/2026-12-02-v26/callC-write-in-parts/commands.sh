#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main write-in-parts` (main 7d7778f), then `cargo xtask gpu-bundle` of
# write-in-parts (4392fe8: pq_write_by_index 25bc119 + a test tweak); peers, test-cpu and test-emulated removed; bins stripped and gzipped;
# bench-main beside.
# v26 call C: warm-up runs (each build's PTX JIT, ~20 s), an A/B of main and write-in-parts (= pqtopk) on the edge
# shapes by index and on few-row table shapes by index (pq_select_by_index's code changed), then every landing check.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in main pqtopk; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
AB_BUILDS="main pqtopk" AB_TABLE=edge-shapes.json AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 120 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
echo "edge index A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main pqtopk" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 long_b1_n131072_k2048" AB_DIST=uniform,llm,equal \
  AB_ARGS="--kernels --order index" OUT=$OUT/table-index timeout 80 ./run-ab.sh > $OUT/ab-table-index.txt 2>&1
echo "table-shape A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index table-index && rm -rf $OUT/edge-index $OUT/table-index
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
