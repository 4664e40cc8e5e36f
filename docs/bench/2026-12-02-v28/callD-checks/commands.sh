#!/usr/bin/env bash
# Here: `cargo xtask gpu-bundle` of 669bef8; peers, test-cpu and test-emulated removed; bins stripped and gzipped.
# v28 call D: every landing check of 669bef8 (merge_parts and merge_digits share one arrival;
# the PTX of the three selection kernels changed slightly from 210f088's).
cd "$(dirname "$0")"
OUT=$OUT ./run-landing.sh checks
