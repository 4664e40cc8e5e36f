#!/usr/bin/env bash
# Here: branch small-by-bitmap (5732337, on main 6b3453c); cargo xtask gpu-bundle; bin/test-cpu and
# bin/test-emulated removed; bin/bench-main is main 6b3453c's bench (land-v25's); the peers left out.
# v25 call C: on a quiet GPU, an A/B of the short-row probe (Path::Auto, both orders) against main, and the
# new build's one-block path and launches on it; then the GPU, indexer and library tests and the demo,
# beside compute-sanitizer on the tests that run pq_topk_small (sweep_k_and_n, ragged_valid, exact_ties,
# nan_and_inf; one shard each).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for order in index score; do
  AB_BUILDS="main pqtopk" AB_TABLE=probe-small.json AB_ARGS="--kernels --order $order" OUT=$OUT/ab-$order timeout 60 ./run-ab.sh > $OUT/ab-probe-$order.txt 2>&1
done
echo "probe A/B done at $(( $(date +%s) - S )) s"
for path in small launches; do for order in index score; do
  timeout 30 bin/bench-pqtopk --table probe-small.json --dist uniform,equal --order $order --path $path --kernels > $OUT/probe-$path-$order.txt 2>&1
done; done
echo "paths done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab-index ab-score && rm -rf $OUT/ab-index $OUT/ab-score
( SKIP_TESTS=1 SANITIZER_SHARDS=1 SANITIZER_JOBS=12 SANITIZER_FILTER='sweep_k_and_n\|ragged_valid\|exact_ties\|nan_and_inf' OUT=$OUT/san timeout 250 ./run-gpu-suite.sh > $OUT/san.txt 2>&1
  echo "sanitizers rc $? at $(( $(date +%s) - S )) s" >> $OUT/san.txt ) &
for t in test-gpu test-index test-pqtopk; do
  echo "== $t"; timeout 200 bin/$t --test-threads=4 2>&1 | grep -E 'test result|FAILED|panicked' | tail -10
done > $OUT/tests.txt 2>&1
echo "tests done at $(( $(date +%s) - S )) s"; cat $OUT/tests.txt
bin/example-demo > $OUT/demo.txt 2>&1; echo "demo rc $?"; tail -1 $OUT/demo.txt
wait
grep -E '===|rc' $OUT/san.txt | tail -6
echo "all done at $(( $(date +%s) - S )) s"
