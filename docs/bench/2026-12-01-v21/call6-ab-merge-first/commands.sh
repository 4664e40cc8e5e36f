#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main merge-first (main = f35dabe + the docs commit f4b361e, same PTX); rm gpu-bundle/bin/test-gpu-main.gz.
# v21 call 6: merge-first's GPU tests, then a score-order A/B of main (f35dabe) and merge-first
# (rows whose keys fit the padded merge sort skip the buckets) over every shape and family.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
AB_BUILDS="main merge-first" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab && rm -rf $OUT/ab
timeout 130 bin/test-gpu-merge-first --test-threads=4 > $OUT/test-merge-first.log 2>&1
echo "merge-first: rc $? $(grep '^test result' $OUT/test-merge-first.log)"; grep -E '^test .*FAILED|panicked' $OUT/test-merge-first.log | head -5
echo "tests done at $(( $(date +%s) - S )) s"
