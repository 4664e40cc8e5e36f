#!/usr/bin/env bash
# Here: the bundle of call B less the other builds and tests, with ../shared/peers copied in; docs/bench and host/ptx were
# moved out of the work tree for the call (the tree and the peers were 65 MiB, over the 64 MiB a call carries), and back after.
# v28 call C: the table of shared-refine (210f088) with both peer scripts, and the edge and
# short-row tables with them (run-landing.sh table).
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
OUT=$OUT ./run-landing.sh table
