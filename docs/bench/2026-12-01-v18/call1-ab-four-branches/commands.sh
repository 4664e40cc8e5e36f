#!/usr/bin/env bash
# Session v18 call 1: GPU tests of five builds (in parallel), index-order A/B, score-order crowded A/B, cluster path.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S=$(date +%s)
echo "### A/B index order"
AB_BUILDS="main ties-stop-early split-decode" AB_SHAPES="decode_b1_k2048 long_b1_n131072_k2048 hub_m2c64_k3020 hub_m4c256_k6300 chunk_sq128_k2048" AB_ARGS="--kernels --order index" OUT=$OUT/ab timeout 170 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
AB_TABLE=edge-shapes.json AB_BUILDS="main ties-stop-early split-decode" AB_ARGS="--order index" OUT=$OUT/ab timeout 50 ./run-ab.sh > $OUT/ab-edge.txt 2>&1
echo "edge A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main crowded-buckets crowded-buckets-direct" AB_SHAPES="hub_m2c64_k3020 hub_m4c256_k6300 hub_m2c64_sq32_k1380 decode_b1_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 100 ./run-ab.sh > $OUT/ab-crowded.txt 2>&1
echo "crowded A/B done at $(( $(date +%s) - S )) s"
for s in decode_b1_k2048 hub_m2c64_k3020 hub_m4c256_k6300; do
  timeout 13 bin/bench-main --table shapes.json --shape $s --dist uniform,equal --path cluster --order index --kernels 2>&1 | grep -v '^#' | tail -6
done > $OUT/cluster.txt 2>&1
echo "cluster done at $(( $(date +%s) - S )) s"
rm -rf $OUT/ab
for b in main ties-stop-early split-decode crowded-buckets crowded-buckets-direct; do
  ( RUST_TEST_THREADS=3 timeout 180 bin/test-gpu-$b > $OUT/test-$b.txt 2>&1; echo "rc $?" >> $OUT/test-$b.txt ) &
done
wait
echo "tests done at $(( $(date +%s) - S )) s"
for b in main ties-stop-early split-decode crowded-buckets crowded-buckets-direct; do echo "$b: $(grep -E '^test result' $OUT/test-$b.txt) $(tail -1 $OUT/test-$b.txt)"; grep -E 'FAILED|panicked' $OUT/test-$b.txt | head -5; done
