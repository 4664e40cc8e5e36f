#!/usr/bin/env bash
# Here: main 554bdb7 (dense-lean fast-forwarded: 26ec394, f2b3853, 2423115, 4163010, and the smoke PTX);
# cargo xtask gpu-bundle; bin/test-cpu and bin/test-emulated removed; bin/bench-main is 022313d's bench;
# the peers left out of this call (the 64 MiB a call carries).
# v24 call 3: every landing check (sanitizers on the selecting tests, GPU, indexer and library tests, demo),
# with an A/B against the previous main first; then the sanitizers on the tensor-core test, which the landing
# filter leaves out; then an L2 A/B of chunk_sq16 against the previous main.
cd "$(dirname "$0")"
S=$(date +%s)
LANDING_AB_SHAPES="chunk_sq16_k2048 decode_b1_k2048" OUT=$OUT ./run-landing.sh checks
SKIP_TESTS=1 SANITIZER_SHARDS=2 SANITIZER_JOBS=6 SANITIZER_FILTER='many_rows_per_kv_head_score_on_tensor_cores' OUT=$OUT/san-dense timeout 150 ./run-gpu-suite.sh > $OUT/san-dense.txt 2>&1
echo "dense sanitizers rc $? at $(( $(date +%s) - S )) s"; grep '===' $OUT/san-dense.txt
AB_SHAPES="chunk_sq16_k2048" AB_ARGS="--kernels --metric l2" OUT=$OUT/ab-l2 timeout 50 ./run-ab.sh > $OUT/ab-l2.txt 2>&1
rm -rf $OUT/ab-l2
echo "L2 A/B done at $(( $(date +%s) - S )) s"
