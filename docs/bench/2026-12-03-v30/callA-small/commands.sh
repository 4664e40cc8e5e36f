#!/usr/bin/env bash
# Call A: the one-block path (pq_topk_small) of four builds on the short rows, forced with
# `--path small`, both orders (run-ab.sh alternates the builds shape by shape), then main's
# three launches on the same shapes (`--path launches`, unchanged by the branches) for the
# crossover, and n = 1 through the one block.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
B="main small-batched small-256 small-lut"
for b in $B; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
for order in score index; do
  AB_BUILDS="$B" AB_TABLE=short-rows.json AB_DIST=uniform,llm,equal AB_ARGS="--path small --order $order" \
    OUT=$OUT/small-$order timeout 200 ./run-ab.sh > $OUT/ab-small-$order.txt 2>&1
  echo "A/B $order done at $(( $(date +%s) - S )) s"
  python3 ab-table.py $OUT/ab-small-$order.txt
done
for order in score index; do
  timeout 60 bin/bench-main --table short-rows.json --dist uniform --path launches --order $order 2>&1 | grep -v '^#' > $OUT/launches-$order.txt
  cat $OUT/launches-$order.txt
done
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES=n1_k1 AB_DIST=uniform,equal AB_ARGS="--path small" \
  OUT=$OUT/edge timeout 60 ./run-ab.sh > $OUT/ab-edge.txt 2>&1
python3 ab-table.py $OUT/ab-edge.txt
tar czf $OUT/ab.tgz -C $OUT small-score small-index edge && rm -rf $OUT/small-score $OUT/small-index $OUT/edge
echo "all done at $(( $(date +%s) - S )) s"
