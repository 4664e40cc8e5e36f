#!/usr/bin/env bash
# Runs on the GPU machine from inside gpu-bundle/: pqtopk's table on every data family, the peer
# pipelines (peers.py: torch.topk; peers_sota.py: + FlashInfer's top-k, installed offline from
# peers/wheels/), in one run, then the ratios (scripts/compare.py), in score order and then in
# index order. Writes JSON to ${OUT:-.}.
# Extra arguments go to the bench (e.g. --shape NAME, --dist uniform,llm). BENCH_TABLE=FILE
# times the shapes of FILE instead of shapes.json (pqtopk and both peer scripts).
# SKIP_PEERS=1 runs pqtopk's table only; SKIP_TABLE=1 skips the top-k table (and its peers),
# SKIP_INDEXER=1 the indexer's benchmark;
# the indexer's benchmark and its torch k-means peer (kmeans_torch.py) run last.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
mkdir -p "$out"
table=${BENCH_TABLE:-shapes.json}
peer_jsons=()
if [ -z "${SKIP_TABLE:-}" ]; then
bin/bench-pqtopk --table "$table" --dist all --json "$out/pqtopk.json" "$@" || { echo "bench failed"; exit 1; }
fi
if [ -z "${SKIP_TABLE:-}" ] && [ -z "${SKIP_PEERS:-}" ] && [ -f peers/peers.py ]; then
  PYTHONUNBUFFERED=1 python3 peers/peers.py --shapes "$table" --out "$out" && peer_jsons+=("$out/peers.json") \
    || echo "peers.py failed"
  if [ -f peers/peers_sota.py ]; then
    site=${PEERS_SITE:-/tmp/site}
    if ls peers/wheels/*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$site" peers/wheels/*.whl; then
      export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    else
      echo "FlashInfer wheels not installed: peers_sota.py runs its torch parts only"
    fi
    export FLASHINFER_WORKSPACE_BASE=/tmp/fi_ws FLASHINFER_CUDA_ARCH_LIST=9.0 \
      TVM_FFI_CACHE_DIR=/tmp/tvm_ffi_cache PYTHONUNBUFFERED=1
    python3 peers/peers_sota.py --shapes "$table" --out "$out" && peer_jsons+=("$out/peers_sota.json") \
      || echo "peers_sota.py failed"
  fi
fi
if [ -z "${SKIP_TABLE:-}" ]; then
  python3 compare.py "$out/pqtopk.json" "${peer_jsons[@]}" || true
  # Index order too (what sparse attention gathers by; no peer returns it, so it is compared
  # with every peer), unless the caller picked an order.
  if [[ " $* " != *" --order "* ]]; then
    bin/bench-pqtopk --table "$table" --dist all --order index --json "$out/pqtopk-index.json" "$@" \
      && python3 compare.py "$out/pqtopk-index.json" "${peer_jsons[@]}" || echo "index-order bench failed"
  fi
fi
[ -n "${SKIP_INDEXER:-}" ] && exit 0
bin/bench-pqtopk --indexer --json "$out/indexer.json" || echo "indexer bench failed"
[ -n "${SKIP_PEERS:-}" ] || PYTHONUNBUFFERED=1 python3 kmeans_torch.py --out "$out" || echo "kmeans_torch.py failed"
