#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/ (built by `cargo xtask gpu-bundle`):
# the whole test suite, then compute-sanitizer memcheck, racecheck and synccheck on the GPU tests
# (PQTOPK_QUICK=1 keeps the sweep shapes small enough for the sanitizers), each test in its own
# sanitized process. SANITIZER_FILTER (a grep pattern) picks the tests; SANITIZER_SHARDS=n splits
# each picked sweep into n processes (PQTOPK_SHARD, tests/gpu.rs), for sweeps that outrun a call.
# SANITIZERS="memcheck racecheck synccheck" (the default) picks the tools (empty: none); SKIP_TESTS=1 skips the
# plain test run.
set -uo pipefail
cd "$(dirname "$0")"
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
logs=${OUT:-.}
mkdir -p "$logs"
[ -n "${SKIP_TESTS:-}" ] || for t in bin/test-*; do
  echo "=== $t"
  log="$logs/$(basename "$t").log"
  "$t" --nocapture --test-threads=4 > "$log" 2>&1 || { echo "FAILED: $t"; status=1; }
  grep -E 'test result|cases|FAILED|panicked|SKIPPED|device' "$log" || true
done
if command -v compute-sanitizer >/dev/null; then
  # One process per tool and test, SANITIZER_JOBS at once: racecheck of the whole binary in one
  # process ran past 8 minutes; the GPU holds many sanitized processes side by side.
  tests=$(bin/test-gpu --list 2>/dev/null | sed -n 's/: test$//p' | grep -e "${SANITIZER_FILTER:-}")
  # Each finished test prints one line; a clean test's log is removed (the device returns few
  # files), a failing one's kept.
  shards=${SANITIZER_SHARDS:-1}
  for tool in ${SANITIZERS-memcheck racecheck synccheck}; do
    for t in $tests; do for s in $(seq 0 $((shards - 1))); do echo "$tool $t $s/$shards"; done; done
  done | xargs -r -P "${SANITIZER_JOBS:-12}" -n 3 sh -c \
    'log="'"$logs"'/sanitizer-$0-$1-$(echo $2 | tr / _).log"
     if PQTOPK_SHARD=$2 PQTOPK_QUICK=1 compute-sanitizer --tool "$0" --error-exitcode 99 bin/test-gpu --exact "$1" --nocapture --test-threads=1 > "$log" 2>&1
     then echo "clean: $0 $1 $2: $(grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$log") $(grep -h "rows checked" "$log")"; rm "$log"
     else echo "FAILED: $0 $1 $2 (rc $?)"; fi' \
    | tee "$logs/sanitizers.txt"
  grep -q FAILED "$logs/sanitizers.txt" && status=1
  for tool in ${SANITIZERS-memcheck racecheck synccheck}; do
    echo "=== compute-sanitizer --tool $tool: $(grep -c "^clean: $tool " "$logs/sanitizers.txt") of $(( $(echo $tests | wc -w) * shards )) processes clean"
  done
else
  echo "compute-sanitizer not found"; status=1
fi
echo "gpu suite exit status: $status"
exit $status
