#!/usr/bin/env bash
# Runs on the GPU machine from inside a bundle of scripts/bundle-branches.sh: every branch's GPU
# tests (three test binaries at once), then run-ab.sh over the branches on every shape of
# shapes.json (RUN_AB_SHAPES picks fewer), then, for each branch whose bench knows --phases,
# pq_select's phase clocks on the few-rows shapes. Logs and JSON (tarred) in $OUT. An A/B takes
# about 6 s per build and shape: with many builds, split the calls (RUN_SKIP_TESTS=1 skips the
# tests, RUN_SKIP_PHASES=1 the phase clocks).
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
mkdir -p "$out"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
for f in bin/*.gz; do gunzip -f "$f"; done
chmod +x bin/*
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
stamp tests
[ -n "${RUN_SKIP_TESTS:-}" ] || printf '%s\n' "$@" | xargs -P 3 -I{} sh -c 'bin/test-gpu-{} --test-threads=4 > '"$out"'/test-{}.log 2>&1;
  echo "{}: rc $? $(grep "^test result" '"$out"'/test-{}.log)"; grep -E "^test .*FAILED|panicked" '"$out"'/test-{}.log | head -5'
stamp ab
mkdir -p "$out/ab"
AB_BUILDS="$*" AB_SHAPES="${RUN_AB_SHAPES:-}" OUT="$out/ab" ./run-ab.sh > "$out/ab.txt" 2>&1
tar czf "$out/ab.tgz" -C "$out" ab && rm -r "$out/ab"
stamp phases
[ -n "${RUN_SKIP_PHASES:-}" ] || for b in "$@"; do
  if grep -aq -- '--phases' "bin/bench-$b"; then
    echo "=== $b"
    for s in decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300; do
      bin/bench-$b --table shapes.json --shape $s --dist uniform,llm,narrow,equal --phases | grep -v '^#\|^device\|^options'
    done
  fi
done > "$out/phases.txt" 2>&1
stamp done
