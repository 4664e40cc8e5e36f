#!/usr/bin/env bash
# Here: `cargo xtask gpu-bundle` of staged-write 87a6eba (land-v26 + the Auto routing fix 8cb0ce5 + the staged write),
# only bin/bench-pqtopk kept, with the peers; bench-main, bench-land-v26 (0701724) and bench-ablate-no-write (c254fca)
# from call A's bundle beside.
# v26 call B: the k-close-to-n A/B by index (call A's was lost to the PTX JIT of five fresh builds, ~20 s each),
# then the table with both peer scripts, the edge shapes and the short rows (run-landing.sh table).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
AB_BUILDS="main land-v26 ablate-no-write pqtopk" AB_TABLE=edge-shapes.json AB_SHAPES="n4097_k4097_16rows n100003_k99999_4rows" \
  AB_DIST=uniform,equal,sorted AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 140 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
echo "edge index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index && rm -rf $OUT/edge-index
# (the table runs in call B2: the peers and four benches do not fit one call's 64 MiB beside the repository)
echo "all done at $(( $(date +%s) - S )) s"
