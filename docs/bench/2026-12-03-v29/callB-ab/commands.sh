#!/usr/bin/env bash
# Here: `bash scripts/bundle-branches.sh main write-waves` (1995d47, 3efac18), then `cargo xtask gpu-bundle` of 3efac18 (peers, test-cpu, test-emulated removed; stripped, gzipped; both benches beside).
# v29 call B: an A/B of main (1995d47) and write-waves (3efac18: call A's build, whose grouped
# blocks now publish every chunk's counts before writing any), then, unless equal keys at
# n = 1 M still take over 100 us, every landing check of write-waves.
cd "$(dirname "$0")"
for f in bin/*.gz; do gunzip -f $f; done; chmod +x bin/*
S=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for b in main write-waves; do timeout 60 bin/bench-$b --table edge-shapes.json --shape n1_k1 > /dev/null 2>&1; done
echo "JIT warm-up done at $(( $(date +%s) - S )) s"
B="main write-waves"
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n1000003_k1024_8rows" AB_DIST=uniform,equal,sorted,narrow,llm \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge-index timeout 90 ./run-ab.sh > $OUT/ab-edge-index.txt 2>&1
python3 ab-table.py $OUT/ab-edge-index.txt
AB_BUILDS="$B" AB_TABLE=edge-shapes.json AB_SHAPES="n100003_k99999_4rows" AB_DIST=uniform,equal \
  AB_ARGS="--kernels --order index" OUT=$OUT/edge100k timeout 40 ./run-ab.sh > $OUT/ab-edge100k-index.txt 2>&1
AB_BUILDS="$B" AB_SHAPES="decode_b1_k2048 long_b1_n131072_k2048" AB_DIST=uniform \
  AB_ARGS="--kernels --order index" OUT=$OUT/table-index timeout 40 ./run-ab.sh > $OUT/ab-table-index.txt 2>&1
echo "A/B done at $(( $(date +%s) - S )) s"
tar czf $OUT/ab.tgz -C $OUT edge-index edge100k table-index && rm -rf $OUT/edge-index $OUT/edge100k $OUT/table-index
equal=$(python3 ab-table.py $OUT/ab-edge-index.txt | grep ' equal ' | awk -F'|' '{print $2}' | awk '{print $1}')
echo "write-waves equal keys at n = 1 M: $equal us"
if python3 -c "import sys; sys.exit(0 if float('$equal') <= 100 else 1)"; then
  OUT=$OUT ./run-landing.sh checks
else
  echo "checks skipped"
fi
echo "all done at $(( $(date +%s) - S )) s"
