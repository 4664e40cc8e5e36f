"""pqtopk against the best peer, and pqtopk's cliff across data families, per shape.

python3 compare.py pqtopk.json [peers.json] [peers_sota.json]

pqtopk.json: the bench's --table --json output (rows with shape, dist, stream_us, graph_us).
peers.json (peers.py): a list of rows {shape, <method>: {total_us, ...}, ...}.
peers_sota.json (peers_sota.py): {"meta", "rows": [{shape, select: {score: {selection: {total_us, mismatch_rows}}}, ...}]}.

Prints per shape: pqtopk's uniform stream time (and graph replay time), the best correct peer
pipeline over both peer files, and best_peer / pqtopk (above 1: pqtopk is faster); for a run in
score order also the best peer whose output is sorted too (like for like: the unsorted
selections skip the ordering pqtopk pays for); then per shape the worst data family's stream
time over uniform (the cliff; target <= 1.25).
"""
import json, sys

CLIFF_TARGET = 1.25


# Selections whose output is sorted best first, as pqtopk's score order is: torch.topk (peers.py
# and peers_sota.py's torch_topk) and FlashInfer's top_k(sorted=True). The others (fi_auto,
# fi_radix, fi_cub, fi_ragged) return their k in no particular order.
SORTED_SELECTIONS = ("torch_topk", "fi_sorted")


def peer_best(paths):
    """(best, best_sorted): shape -> (total_us, label) of the fastest correct peer pipeline over
    all peer files, and of those whose output is sorted by score."""
    best, best_sorted = {}, {}

    def offer(shape, us, label, is_sorted):
        if not (isinstance(us, (int, float)) and us > 0):
            return
        for table in (best, best_sorted) if is_sorted else (best,):
            if shape not in table or us < table[shape][0]:
                table[shape] = (us, label)

    for path in paths:
        try:
            doc = json.load(open(path))
        except (OSError, ValueError) as e:
            print(f"{path}: {e}")
            continue
        rows = doc["rows"] if isinstance(doc, dict) else doc
        for r in rows:
            shape = r.get("shape")
            for score, selections in (r.get("select") or {}).items():  # peers_sota.py
                for sel, v in selections.items():
                    if v.get("mismatch_rows", 0) == 0:
                        offer(shape, v.get("total_us"), f"{score}+{sel}", sel in SORTED_SELECTIONS)
            for k, v in r.items():  # peers.py: one dict per score method, each with torch.topk
                if isinstance(v, dict) and "total_us" in v:
                    offer(shape, v["total_us"], k + "+torch_topk", True)
    return best, best_sorted


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    doc = json.load(open(sys.argv[1]))
    ours = doc["rows"]
    # Score order is compared with the sorted selections as well; index order (or Unordered)
    # with every selection, none of which returns index order.
    by_score = doc.get("order", "ByScore") == "ByScore"
    best, best_sorted = peer_best(sys.argv[2:])
    if not by_score:
        best_sorted = {}
    by_shape = {}
    for r in ours:
        by_shape.setdefault(r["shape"], {})[r.get("dist", "uniform")] = r
    print(f"pqtopk order: {'score (best first)' if by_score else 'index'}")
    sorted_header = f" {'best_sorted_peer':>26s} {'peer_us':>9s} {'peer/pqtopk':>11s}" if by_score else ""
    print(f"{'shape':24s} {'pqtopk_us':>10s} {'graph_us':>9s} {'best_peer':>26s} {'peer_us':>9s} {'peer/pqtopk':>11s}{sorted_header}")
    for name, dists in by_shape.items():
        u = dists.get("uniform")
        if u is None:
            print(f"{name:24s} {'(no uniform row)':>10s}")
            continue
        us = u.get("stream_us", u.get("median_us"))
        graph = u.get("graph_us", float("nan"))
        if name not in best:
            print(f"{name:24s} {us:10.1f} {graph:9.1f} {'-':>26s}")
            continue
        peer_us, label = best[name]
        line = f"{name:24s} {us:10.1f} {graph:9.1f} {label:>26s} {peer_us:9.1f} {peer_us / us:10.2f}x"
        if name in best_sorted:
            sorted_us, sorted_label = best_sorted[name]
            line += f" {sorted_label:>26s} {sorted_us:9.1f} {sorted_us / us:10.2f}x"
        print(line)

    print()
    print(f"{'shape':24s} {'uniform_us':>10s} {'worst_dist':>10s} {'worst_us':>9s} {'cliff':>6s}  (target <= {CLIFF_TARGET})")
    misses = 0
    for name, dists in by_shape.items():
        u = dists.get("uniform")
        if u is None or len(dists) < 2:
            continue
        base = u.get("stream_us", u.get("median_us"))
        worst = max(dists.items(), key=lambda kv: kv[1].get("stream_us", kv[1].get("median_us")))
        w_us = worst[1].get("stream_us", worst[1].get("median_us"))
        cliff = w_us / base
        flag = "" if cliff <= CLIFF_TARGET else "  ABOVE TARGET"
        misses += cliff > CLIFF_TARGET
        others = " ".join(f"{d}={r.get('stream_us', r.get('median_us')) / base:.2f}" for d, r in dists.items() if d != "uniform")
        print(f"{name:24s} {base:10.1f} {worst[0]:>10s} {w_us:9.1f} {cliff:6.2f}{flag}   [{others}]")
    if misses:
        print(f"{misses} shape(s) above the cliff target {CLIFF_TARGET}")


if __name__ == "__main__":
    main()
