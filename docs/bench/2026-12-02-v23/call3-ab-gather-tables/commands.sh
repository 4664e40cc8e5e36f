#!/usr/bin/env bash
# Here: bash scripts/bundle-branches.sh main gather-lean tables-async (main 5af372b, 74e3df8's PTX).
# v23 call 3: A/B of main, gather-lean (the sweeps' class masks without a validity test per key, running slots,
# predicated stores) and tables-async (pq_score copies its tables with cp.async), both orders; then the branches' GPU tests.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main gather-lean tables-async"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300 long_b1_n131072_k2048 decode_b16_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020 long_b1_n131072_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 120 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index && rm -rf $OUT/ab $OUT/ab-index
for b in gather-lean tables-async; do
  timeout 150 bin/test-gpu-$b --test-threads=4 > $OUT/test-$b.txt 2>&1
  echo "$b: rc $? $(grep '^test result' $OUT/test-$b.txt)"; grep -E '^test .*FAILED|panicked' $OUT/test-$b.txt | head -5
done
echo "tests done at $(( $(date +%s) - S )) s"
