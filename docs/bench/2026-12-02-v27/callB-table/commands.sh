#!/usr/bin/env bash
# Here: call A's bundle (chunks-ranked 5aef7d5) with only bin/bench-pqtopk and the peers (copied from ../shared/peers).
# v27 call B: the table with both peer scripts, the edge shapes and the short rows.
cd "$(dirname "$0")"
S=$(date +%s)
OUT=$OUT ./run-landing.sh table
echo "all done at $(( $(date +%s) - S )) s"
