#!/usr/bin/env bash
# Here: the call-A bundle (branch land-v25) with only bin/bench-pqtopk and the peers (the 64 MiB a call carries).
# v25 call B: the table (both orders, both peer scripts, the edge shapes with the peers too) on a quiet GPU,
# then the probe of the one-block path against the launches at short rows (uniform and equal, both orders).
cd "$(dirname "$0")"
S=$(date +%s)
OUT=$OUT ./run-landing.sh table
for path in small launches; do for order in index score; do
  timeout 35 bin/bench-pqtopk --table probe-small.json --dist uniform,equal --order $order --path $path --kernels > $OUT/probe-$path-$order.txt 2>&1
done; done
echo "probe done at $(( $(date +%s) - S )) s"
