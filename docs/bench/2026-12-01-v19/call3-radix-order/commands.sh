#!/usr/bin/env bash
# radix-order (a0b9728): score-order A/B against main on a quiet GPU, then the landing checks: sanitizers in
# the background, the tests and the demo beside them, the table with both peer scripts, the edge table.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 70 ./run-ab.sh > $OUT/ab-score.txt 2>&1
rm -rf $OUT/ab
echo "A/B done at $(( $(date +%s) - S )) s"
( SKIP_TESTS=1 SANITIZER_SHARDS=2 SANITIZER_JOBS=14 SANITIZER_FILTER='few_rows_share\|k_close_to_n\|every_data_family\|exact_ties\|crowded_rows\|ragged_valid\|nan_and_inf\|many_rows_in\|sweep_k_and_n' OUT=$OUT/san timeout 320 ./run-gpu-suite.sh > $OUT/san.txt 2>&1; echo "sanitizers rc $? at $(( $(date +%s) - S )) s" >> $OUT/san.txt ) &
for t in test-gpu test-index test-pqtopk; do echo "== $t"; bin/$t --test-threads=4 2>&1 | grep -E 'test result|FAILED|panicked|^test .*ok$' | tail -40; done > $OUT/tests.txt 2>&1
echo "tests done at $(( $(date +%s) - S )) s"
bin/example-demo > $OUT/demo.txt 2>&1; echo "demo rc $?"; tail -1 $OUT/demo.txt
wait
echo "sanitizers done at $(( $(date +%s) - S )) s"
grep -v '^clean' $OUT/san.txt | tail -6
grep -E 'test result|FAILED' $OUT/tests.txt
SKIP_INDEXER=1 OUT=$OUT/bench timeout 200 ./run-bench.sh > $OUT/bench.log 2>&1
echo "bench done at $(( $(date +%s) - S )) s"
timeout 15 bin/bench-pqtopk --table edge-shapes.json --dist all --order index 2>&1 | grep -v '^#' > $OUT/edge-index.txt
echo "edge done at $(( $(date +%s) - S )) s"
grep -E 'x$|x  |ABOVE|cliff' $OUT/bench.log | tail -40
