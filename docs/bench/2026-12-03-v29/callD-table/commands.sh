#!/usr/bin/env bash
# Here: the bundle of call B (bundle-branches main write-waves, then gpu-bundle of 3efac18), with the peers back and bench-write-waves as bin/bench-pqtopk; docs/bench and host/ptx moved out of the tree for the call (64 MiB carry).
# v29 call D: the tables of write-waves (3efac18) with both peer scripts: the shapes (both
# orders), the edge shapes and the short rows.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
OUT=$OUT ./run-landing.sh table
echo "all done at $(( $(date +%s) - S )) s"
