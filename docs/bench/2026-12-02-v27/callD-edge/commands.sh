#!/usr/bin/env bash
# v27 call D: call C's bundle (chunks-ranked f1f75e9) with only bin/bench-pqtopk and the peers: the edge shapes with
# both peer scripts (the table shapes and short rows do not reach the changed kernels; call B timed them on 5aef7d5,
# whose other kernels' PTX is f1f75e9's).
cd "$(dirname "$0")"
for f in bin/*.gz; do [ -e "$f" ] && gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
BENCH_TABLE=edge-shapes.json SKIP_INDEXER=1 OUT=$OUT/edge-shapes timeout 200 ./run-bench.sh > $OUT/edge-shapes.log 2>&1
echo "edge-shapes done at $(( $(date +%s) - S )) s"
grep -hE 'x$|x  ' $OUT/edge-shapes.log | tail -12
