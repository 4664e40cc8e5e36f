#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/ (built by `cargo xtask gpu-bundle`, with the
# test and example binaries): every check a kernel change needs before it lands. `run-landing.sh
# checks` runs the sanitizers, tests and demo (about 330 s), `run-landing.sh table` the tables
# (about 200 s, both orders with both peer scripts, and the edge table), no argument both. One
# call of both can pass the 600 s a device call may take (v20's call 4 gave the table 210 s and
# lost its index-order half), so land in two calls.
# - The sanitizers (memcheck, racecheck, synccheck) on the tests that select (2 shards each),
#   in the background.
# - Beside them, the GPU tests, the indexer's and the library's tests, and the demo.
# - Then, on a quiet GPU, the table with both peer scripts (run-bench.sh), and the edge and
#   short-row tables with them too.
# LANDING_AB_SHAPES="name …" first runs run-ab.sh in score order with --kernels on those shapes
# (bin/bench-main against bin/bench-pqtopk), before anything else loads the GPU. Writes to $OUT.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
mkdir -p "$out"
for f in bin/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x bin/*
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }
if [ -n "${LANDING_AB_SHAPES:-}" ]; then
  AB_SHAPES="$LANDING_AB_SHAPES" AB_ARGS="--kernels" OUT="$out/ab" timeout 70 ./run-ab.sh > "$out/ab-score.txt" 2>&1
  rm -rf "$out/ab"
  echo "A/B done at $(elapsed)"
fi
if [ "${1:-all}" != table ]; then
  selecting='few_rows_share\|k_close_to_n\|every_data_family\|exact_ties\|crowded_rows\|ragged_valid\|nan_and_inf\|many_rows_in\|sweep_k_and_n'
  ( SKIP_TESTS=1 SANITIZER_SHARDS=2 SANITIZER_JOBS=14 SANITIZER_FILTER="$selecting" OUT="$out/san" timeout 330 \
      ./run-gpu-suite.sh > "$out/san.txt" 2>&1
    echo "sanitizers rc $? at $(elapsed)" >> "$out/san.txt" ) &
  for t in test-gpu test-index test-pqtopk; do
    echo "== $t"
    bin/$t --test-threads=4 2>&1 | grep -E 'test result|FAILED|panicked|^test .*ok$' | tail -40
  done > "$out/tests.txt" 2>&1
  echo "tests done at $(elapsed)"
  bin/example-demo > "$out/demo.txt" 2>&1
  echo "demo rc $?"; tail -1 "$out/demo.txt"
  wait
  echo "sanitizers done at $(elapsed)"
  grep -v '^clean' "$out/san.txt" | tail -6
  grep -E 'test result|FAILED' "$out/tests.txt"
fi
if [ "${1:-all}" != checks ]; then
  SKIP_INDEXER=1 OUT="$out/bench" timeout 260 ./run-bench.sh > "$out/bench.log" 2>&1
  echo "bench done at $(elapsed)"
  # With the peers too: the edge shapes (n = 1, k close to n; issue #10 asks any k faster than
  # the FlashInfer pipeline on the same shape, in the same run) and the short rows, where the
  # one-launch path and the three launches meet (v25 found a 3-4x cliff there that the table's
  # long rows never showed).
  for table in edge-shapes short-rows; do
    BENCH_TABLE=$table.json SKIP_INDEXER=1 OUT="$out/$table" timeout 150 ./run-bench.sh > "$out/$table.log" 2>&1
    echo "$table done at $(elapsed)"
  done
  grep -E 'x$|x  |ABOVE|cliff' "$out/bench.log" | tail -40
  grep -hE 'x$|x  ' "$out/edge-shapes.log" "$out/short-rows.log" | tail -32
fi
