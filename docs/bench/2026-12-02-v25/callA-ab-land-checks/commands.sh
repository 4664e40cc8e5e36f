#!/usr/bin/env bash
# Here: branch land-v25 (main 6de0ad4 + waves-atomics: score-whole-waves e79c02c and shared-atomics-32 2d5c1c2);
# cargo xtask gpu-bundle; bin/test-cpu and bin/test-emulated removed; the peers left out (64 MiB a call carries);
# bin/bench-main, bench-score-whole-waves and bench-shared-atomics-32 from
# `bash scripts/bundle-branches.sh main score-whole-waves shared-atomics-32 waves-atomics` (main ecfe0a9).
# v25 call A: an A/B of the four builds on a quiet GPU (both orders), the edge shapes per kernel, then every
# landing check of land-v25 and the sanitizers on the tensor-core test.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
B="main score-whole-waves shared-atomics-32 pqtopk"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 decode_b1_mha_k2048 decode_b16_k2048 hub_m2c64_k3020 chunk_sq16_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 150 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "score A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 hub_m2c64_k3020" AB_ARGS="--kernels --order index" OUT=$OUT/ab-index timeout 50 ./run-ab.sh > $OUT/ab-index.txt 2>&1
echo "index A/B done at $(( $(date +%s) - S )) s"
AB_BUILDS="main pqtopk" AB_TABLE=edge-shapes.json AB_ARGS="--kernels --order index" OUT=$OUT/edge timeout 40 ./run-ab.sh > $OUT/edge-index-kernels.txt 2>&1
timeout 40 bin/bench-main --table probe-shapes.json --dist uniform,equal --order index --kernels > $OUT/probe-index.txt 2>&1
echo "edge and probe done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab ab-index edge && rm -rf $OUT/ab $OUT/ab-index $OUT/edge
OUT=$OUT ./run-landing.sh checks
SKIP_TESTS=1 SANITIZER_SHARDS=2 SANITIZER_JOBS=6 SANITIZER_FILTER='many_rows_per_kv_head_score_on_tensor_cores' OUT=$OUT/san-dense timeout 120 ./run-gpu-suite.sh > $OUT/san-dense.txt 2>&1
echo "dense sanitizers rc $? at $(( $(date +%s) - S )) s"; grep '===' $OUT/san-dense.txt
