#!/usr/bin/env bash
# Landing call: sanitizers in the background, the tests and the demo beside them, then the table with both peer scripts, then the edge table.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
( SKIP_TESTS=1 SANITIZER_SHARDS=2 SANITIZER_JOBS=14 SANITIZER_FILTER='few_rows_share\|k_close_to_n\|every_data_family\|exact_ties\|crowded_rows\|ragged_valid\|nan_and_inf\|many_rows_in\|sweep_k_and_n' OUT=$OUT/san timeout 330 ./run-gpu-suite.sh > $OUT/san.txt 2>&1; echo "sanitizers rc $? at $(( $(date +%s) - S )) s" >> $OUT/san.txt ) &
for t in test-gpu test-index test-pqtopk; do echo "== $t"; bin/$t --test-threads=4 2>&1 | grep -E 'test result|FAILED|panicked|^test .*ok$' | tail -40; done > $OUT/tests.txt 2>&1
echo "tests done at $(( $(date +%s) - S )) s"
bin/example-demo > $OUT/demo.txt 2>&1; echo "demo rc $?"; tail -4 $OUT/demo.txt
wait
echo "sanitizers done at $(( $(date +%s) - S )) s"
grep -c '^clean' $OUT/san.txt; grep -v '^clean' $OUT/san.txt | head -20
grep -E 'test result|FAILED' $OUT/tests.txt
SKIP_INDEXER=1 OUT=$OUT/bench timeout 210 ./run-bench.sh > $OUT/bench.log 2>&1
echo "bench done at $(( $(date +%s) - S )) s"
timeout 30 bin/bench-pqtopk --table edge-shapes.json --dist all --order index 2>&1 | grep -v '^#' > $OUT/edge-index.txt
echo "edge done at $(( $(date +%s) - S )) s"
tail -40 $OUT/bench.log
