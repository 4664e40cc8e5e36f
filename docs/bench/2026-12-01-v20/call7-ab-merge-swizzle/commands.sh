#!/usr/bin/env bash
# v20 call 7: a score-order A/B of main (baaf748), merge-swizzle and merge-swizzle-b on a quiet
# GPU, ncu's shared-memory wavefronts of their pq_select on hub m2c64 LLM-like rows, then
# merge-swizzle-b's GPU tests.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
AB_BUILDS="main merge-swizzle merge-swizzle-b" AB_SHAPES="hub_m2c64_k3020 hub_m2c64_sq32_k1380 decode_b1_k2048" AB_ARGS="--kernels" OUT=$OUT/ab timeout 120 ./run-ab.sh > $OUT/ab-score.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT ab && rm -rf $OUT/ab
for b in main merge-swizzle merge-swizzle-b; do echo "== $b"; timeout 40 ncu --clock-control none -k regex:^pq_select$ -c 1 --metrics gpu__time_duration.sum,sm__cycles_elapsed.max,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum bin/bench-$b --table shapes.json --shape hub_m2c64_k3020 --dist llm 2>&1 | grep -E "^\s+(gpu__|l1tex|sm__)"; done > $OUT/ncu-wavefronts.txt 2>&1
echo "ncu done at $(( $(date +%s) - S )) s"
timeout 150 bin/test-gpu-merge-swizzle-b --test-threads=4 > $OUT/test-merge-swizzle-b.log 2>&1
echo "merge-swizzle-b: rc $? $(grep '^test result' $OUT/test-merge-swizzle-b.log)"; grep -E '^test .*FAILED|panicked' $OUT/test-merge-swizzle-b.log | head -5
echo "tests done at $(( $(date +%s) - S )) s"
