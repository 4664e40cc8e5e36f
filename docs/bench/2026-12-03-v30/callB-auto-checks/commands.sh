#!/usr/bin/env bash
# Call B: main against small-lut (the table path, direct scoring one pair at a time, 256-thread
# blocks for many rows, new Auto limits) through Path::Auto on the short rows, both orders;
# the probe shapes forced through both paths; n = 1; then every landing check of small-lut.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
B="main small-lut"
for b in $B; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
for order in score index; do
  AB_BUILDS="$B" AB_TABLE=short-rows.json AB_DIST=uniform,llm,equal AB_ARGS="--order $order" \
    OUT=$OUT/auto-$order timeout 120 ./run-ab.sh > $OUT/ab-auto-$order.txt 2>&1
  echo "A/B auto $order done at $(( $(date +%s) - S )) s"
  python3 ab-table.py $OUT/ab-auto-$order.txt
  for path in small launches; do
    AB_BUILDS="$B" AB_TABLE=probe-rows.json AB_DIST=uniform AB_ARGS="--order $order --path $path" \
      OUT=$OUT/probe-$order-$path timeout 60 ./run-ab.sh > $OUT/ab-probe-$order-$path.txt 2>&1
    echo "probe $order $path:"; python3 ab-table.py $OUT/ab-probe-$order-$path.txt
  done
done
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES=n1_k1 AB_DIST=uniform,equal \
  OUT=$OUT/edge timeout 60 ./run-ab.sh > $OUT/ab-edge.txt 2>&1
python3 ab-table.py $OUT/ab-edge.txt
tar czf $OUT/ab.tgz -C $OUT auto-score auto-index probe-score-small probe-score-launches probe-index-small probe-index-launches edge \
  && rm -rf $OUT/auto-* $OUT/probe-* $OUT/edge
echo "A/B all done at $(( $(date +%s) - S )) s"
OUT=$OUT ./run-landing.sh checks
echo "all done at $(( $(date +%s) - S )) s"
