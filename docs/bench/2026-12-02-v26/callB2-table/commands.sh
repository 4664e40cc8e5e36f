#!/usr/bin/env bash
# Here: call B's bundle (staged-write 87a6eba) with only bin/bench-pqtopk and the peers.
# v26 call B2: the table with both peer scripts, the edge shapes and the short rows (run-landing.sh table).
cd "$(dirname "$0")"
S=$(date +%s)
OUT=$OUT ./run-landing.sh table
echo "all done at $(( $(date +%s) - S )) s"
