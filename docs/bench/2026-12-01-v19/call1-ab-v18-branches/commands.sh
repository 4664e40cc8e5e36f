#!/usr/bin/env bash
# Next session, call 1 (perf-notes v18, "Next device session"): GPU tests of the three branches,
# the A/B of ranges-kernel and select-by-order against main, and phase clocks on the cliffs.
# Read the A/B with `python3 scripts/ab-table.py ab-*.txt` on the CPU machine.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in ranges-kernel select-by-order phase-clocks-v2; do
  ( RUST_TEST_THREADS=4 timeout 200 bin/test-gpu-$b > $OUT/test-$b.txt 2>&1; echo "rc $?" >> $OUT/test-$b.txt ) &
done
wait
echo "tests done at $(( $(date +%s) - S )) s"
for b in ranges-kernel select-by-order phase-clocks-v2; do echo "$b: $(grep -E '^test result' $OUT/test-$b.txt) $(tail -1 $OUT/test-$b.txt)"; grep -E 'FAILED|panicked' $OUT/test-$b.txt | head -3; done
AB_BUILDS="main ranges-kernel select-by-order" AB_SHAPES="chunk_sq128_k2048 chunk_sq16_k2048 decode_b1_k2048 decode_b16_k2048 long_b1_n131072_k2048 hub_m2c64_k3020 hub_m4c256_k6300" AB_ARGS="--kernels --order index" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-index.txt 2>&1
AB_BUILDS="main select-by-order" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300" AB_ARGS="--kernels" OUT=$OUT/ab timeout 60 ./run-ab.sh > $OUT/ab-score.txt 2>&1
rm -rf $OUT/ab
echo "A/B done at $(( $(date +%s) - S )) s"
for s in hub_m2c64_k3020 hub_m2c64_sq32_k1380; do timeout 40 bin/bench-phase-clocks-v2 --table shapes.json --shape $s --dist all --phases; done > $OUT/phases-score.txt 2>&1
for s in long_b1_n131072_k2048 decode_b1_k2048; do timeout 40 bin/bench-phase-clocks-v2 --table shapes.json --shape $s --dist all --phases --order index; done > $OUT/phases-index.txt 2>&1
echo "phases done at $(( $(date +%s) - S )) s"
