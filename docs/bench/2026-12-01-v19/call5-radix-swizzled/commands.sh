#!/usr/bin/env bash
# radix-order (bank-conflict-free counts) and radix-two-sites: GPU tests, then a score-order A/B against main.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
for b in radix-order radix-two-sites; do
  ( RUST_TEST_THREADS=4 timeout 125 bin/test-gpu-$b > $OUT/test-$b.txt 2>&1; echo "rc $?" >> $OUT/test-$b.txt ) &
done
wait
echo "tests done at $(( $(date +%s) - S )) s"
for b in radix-order radix-two-sites; do echo "$b: $(grep -E '^test result' $OUT/test-$b.txt) $(tail -1 $OUT/test-$b.txt)"; grep -E 'FAILED|panicked' $OUT/test-$b.txt | head -3; done
AB_BUILDS="main radix-two-sites radix-order" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 80 ./run-ab.sh > $OUT/ab-score.txt 2>&1
rm -rf $OUT/ab
echo "A/B done at $(( $(date +%s) - S )) s"
