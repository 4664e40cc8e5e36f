#!/usr/bin/env bash
# v20 call 2 (from the repository root, call 1's bundle): warp-state samples per SASS instruction
# of pq_select on hub m2c64 LLM-like rows for main (c57b60c) and merge-order (ef6c518), then
# pq_select's ncu time, three launches each, on LLM-like and uniform rows.
cd gpu-bundle && for f in bin/bench-main.gz bin/bench-merge-order.gz; do gunzip -f $f; done; rm -f bin/*.gz; chmod +x bin/*
NCU_SAMPLES=1 NCU_KERNELS='^pq_select$' OUT=$OUT ./run-ncu.sh hub_m2c64_k3020:llm 2>&1 | tail -5
NCU_KERNELS='^pq_select$' NCU_COUNT=3 ./run-ncu.sh hub_m2c64_k3020:llm hub_m2c64_k3020:uniform 2>&1 | tail -20
# printed (µs): main llm 63.3 65.1 62.9, uniform 27.3 27.8 27.6; merge-order llm 49.0 50.9 49.8, uniform 27.9 27.5 27.6
