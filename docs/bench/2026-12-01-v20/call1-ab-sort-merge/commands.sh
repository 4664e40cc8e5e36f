#!/usr/bin/env bash
# v20 call 1: the GPU tests of sort-u32 and merge-order, then a score-order A/B of main, sort-u32
# and merge-order (per-launch times) on the shapes where crowded rows sort, and the edge table.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for b in sort-u32 merge-order; do
  bin/test-gpu-$b --test-threads=4 > $OUT/test-$b.log 2>&1
  echo "$b: rc $? $(grep '^test result' $OUT/test-$b.log)"; grep -E '^test .*FAILED|panicked' $OUT/test-$b.log | head -5
done
echo "tests done at $(( $(date +%s) - S )) s"
AB_BUILDS="main sort-u32 merge-order" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 hub_m4c256_k6300 decode_b1_k2048 chunk_sq128_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 200 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main sort-u32 merge-order" AB_TABLE=edge-shapes.json OUT=$OUT/ab-edge timeout 60 ./run-ab.sh > $OUT/ab-edge.txt 2>&1
echo "edge done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-edge && rm -rf $OUT/ab $OUT/ab-edge
