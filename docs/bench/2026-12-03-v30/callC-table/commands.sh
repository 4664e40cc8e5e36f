#!/usr/bin/env bash
# Call C: the table of small-lut's final build (Auto limits of call B) with both peer scripts,
# the edge and short-row tables beside them.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
OUT=$OUT ./run-landing.sh table
