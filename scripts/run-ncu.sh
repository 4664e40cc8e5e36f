#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/: each kernel's time (ncu, clocks unlocked, L2
# flushed by ncu) for the first calls of every bench build in bin/ (bench-pqtopk, and bench-main
# where run-ab.sh's base build was copied in) on the given shape:family pairs, e.g.
#   ./run-ncu.sh hub_m2c64_k3020:llm decode_b1_k2048:uniform
# NCU_KERNELS (a regex, default pq_) picks the kernels, NCU_COUNT (default 9) how many launches.
# NCU_SAMPLES=1 instead writes the warp-state samples per SASS instruction of the first launch
# that NCU_KERNELS matches (e.g. NCU_KERNELS='^pq_tables$'), gzipped, to
# ${OUT:-.}/samples-BUILD-SHAPE-FAMILY.csv.gz, for scripts/ncu-samples.py.
# NCU_BENCH_ARGS adds bench arguments to every run (e.g. "--order index"); NCU_TABLE picks the
# shapes' file (default shapes.json).
# NCU_METRICS="a,b,…" instead prints those metrics of each matched launch; the word SHARED_PIPE
# in it stands for the shared-memory pipe's load below (v20 found the merge sort bound by its
# bank conflicts), e.g. NCU_METRICS=SHARED_PIPE NCU_KERNELS='^pq_select$' NCU_COUNT=1.
SHARED_PIPE=sm__cycles_elapsed.max,smsp__inst_executed.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p "${OUT:-.}"
for bench in bin/bench-*; do
  for pair in "$@"; do
    if [ -n "${NCU_SAMPLES:-}" ]; then
      out="${OUT:-.}/samples-$(basename "$bench" | sed 's/^bench-//')-${pair%%:*}-${pair##*:}.csv"
      timeout 120 ncu --clock-control none -k "regex:${NCU_KERNELS:-pq_}" -c 1 --warp-sampling-interval 0 \
        --section SourceCounters --section WarpStateStats --page source --print-source sass --csv \
        "$bench" --table "${NCU_TABLE:-shapes.json}" --shape "${pair%%:*}" --dist "${pair##*:}" ${NCU_BENCH_ARGS:-} > "$out" 2>&1
      gzip -f "$out" && echo "wrote $out.gz"
      continue
    fi
    if [ -n "${NCU_METRICS:-}" ]; then
      echo "== $(basename "$bench") ${pair%%:*} ${pair##*:}"
      timeout 120 ncu --clock-control none -k "regex:${NCU_KERNELS:-pq_}" -c "${NCU_COUNT:-9}" \
        --metrics "gpu__time_duration.sum,${NCU_METRICS/SHARED_PIPE/$SHARED_PIPE}" \
        "$bench" --table "${NCU_TABLE:-shapes.json}" --shape "${pair%%:*}" --dist "${pair##*:}" ${NCU_BENCH_ARGS:-} 2>&1 | grep -E '^  [a-z]|^    [a-z]'
      continue
    fi
    echo "== $(basename "$bench") ${pair%%:*} ${pair##*:} (µs)"
    timeout 120 ncu --clock-control none -k "regex:${NCU_KERNELS:-pq_}" -c "${NCU_COUNT:-9}" --csv --print-units base \
      --metrics gpu__time_duration.sum "$bench" --table "${NCU_TABLE:-shapes.json}" --shape "${pair%%:*}" --dist "${pair##*:}" ${NCU_BENCH_ARGS:-} 2>&1 |
      awk -F'","' '/"gpu__time_duration.sum"/ { v = $NF; gsub(/[",]/, "", v); printf "%-24s %8.1f\n", $5, v / 1000 }'
  done
done
