#!/usr/bin/env bash
# Here: the call-3 bundle (main 554bdb7) with only bin/bench-pqtopk and the peers (the 64 MiB a call carries).
# v24 call 4: the table (both orders, both peer scripts, edge shapes) on a quiet GPU.
cd "$(dirname "$0")"
OUT=$OUT ./run-landing.sh table
