#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/ (built by `cargo xtask gpu-bundle`):
# the whole test suite, then compute-sanitizer memcheck, racecheck and synccheck on the GPU tests
# (PQTOPK_QUICK=1 keeps the sweep shapes small enough for the sanitizers). The three sanitizers
# run at once (one GPU holds them all), so the suite takes as long as the slowest, racecheck.
# SANITIZERS="memcheck racecheck synccheck" (the default) picks the tools; SKIP_TESTS=1 skips the
# plain test run.
set -uo pipefail
cd "$(dirname "$0")"
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
logs=${OUT:-.}
[ -n "${SKIP_TESTS:-}" ] || for t in bin/test-*; do
  echo "=== $t"
  log="$logs/$(basename "$t").log"
  "$t" --nocapture --test-threads=4 > "$log" 2>&1 || { echo "FAILED: $t"; status=1; }
  grep -E 'test result|cases|FAILED|panicked|SKIPPED|device' "$log" || true
done
if command -v compute-sanitizer >/dev/null; then
  tools=(${SANITIZERS:-memcheck racecheck synccheck})
  pids=()
  for tool in "${tools[@]}"; do
    PQTOPK_QUICK=1 compute-sanitizer --tool "$tool" --error-exitcode 99 bin/test-gpu --test-threads=1 ${SANITIZER_FILTER:-} \
      > "$logs/sanitizer-$tool.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!tools[@]}"; do
    tool=${tools[$i]}
    wait "${pids[$i]}"
    rc=$?
    echo "=== compute-sanitizer --tool $tool"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$logs/sanitizer-$tool.log" | tail -3
    [ $rc -eq 0 ] || { echo "FAILED: compute-sanitizer $tool (rc $rc)"; tail -30 "$logs/sanitizer-$tool.log"; status=1; }
  done
else
  echo "compute-sanitizer not found"; status=1
fi
echo "gpu suite exit status: $status"
exit $status
