"""pqtopk against the best peer, and pqtopk's cliff across data families, per shape.

python3 compare.py pqtopk.json [peers.json] [peers_sota.json]

pqtopk.json: the bench's --table --json output (rows with shape, dist, stream_us, graph_us).
peers.json (peers.py): a list of rows {shape, <method>: {total_us, ...}, ...}.
peers_sota.json (peers_sota.py): {"meta", "rows": [{shape, best_total_us, best_pipeline, ...}]}.

Prints per shape: pqtopk's uniform stream time (and graph replay time), the best peer pipeline
over both peer files, and best_peer / pqtopk (above 1: pqtopk is faster); then per shape the
worst data family's stream time over uniform (the cliff; target <= 1.25).
"""
import json, sys

CLIFF_TARGET = 1.25


def peer_best(paths):
    """shape -> (total_us, label) of the fastest peer pipeline over all peer files."""
    best = {}

    def offer(shape, us, label):
        if isinstance(us, (int, float)) and us > 0 and (shape not in best or us < best[shape][0]):
            best[shape] = (us, label)

    for path in paths:
        try:
            doc = json.load(open(path))
        except (OSError, ValueError) as e:
            print(f"{path}: {e}")
            continue
        rows = doc["rows"] if isinstance(doc, dict) else doc
        for r in rows:
            shape = r.get("shape")
            if "best_total_us" in r:  # peers_sota.py: its best correct pipeline
                offer(shape, r["best_total_us"], r.get("best_pipeline", "sota"))
            for k, v in r.items():  # peers.py: one dict per score method
                if isinstance(v, dict) and "total_us" in v:
                    offer(shape, v["total_us"], k + "+torch_topk")
    return best


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ours = json.load(open(sys.argv[1]))["rows"]
    best = peer_best(sys.argv[2:])
    by_shape = {}
    for r in ours:
        by_shape.setdefault(r["shape"], {})[r.get("dist", "uniform")] = r
    print(f"{'shape':24s} {'pqtopk_us':>10s} {'graph_us':>9s} {'best_peer':>26s} {'peer_us':>9s} {'peer/pqtopk':>11s}")
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
        print(f"{name:24s} {us:10.1f} {graph:9.1f} {label:>26s} {peer_us:9.1f} {peer_us / us:10.2f}x")

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
