#!/usr/bin/env bash
# Here: call C's bundle (write-in-parts 4392fe8) with only bin/bench-pqtopk and the peers.
# v26 call D: the table with both peer scripts, the edge shapes (now with n = 1 000 003, k = 1024) and the short rows.
cd "$(dirname "$0")"
S=$(date +%s)
OUT=$OUT ./run-landing.sh table
echo "all done at $(( $(date +%s) - S )) s"
