"""Ratio of pqtopk to the best peer per shape: python3 compare.py pqtopk.json peers.json"""
import json, sys

ours = {r["shape"]: r for r in json.load(open(sys.argv[1]))["rows"]}
peers = {r["shape"]: r for r in json.load(open(sys.argv[2]))}
print(f"{'shape':24s} {'pqtopk_us':>10s} {'best_peer':>12s} {'peer_us':>9s} {'speedup':>8s}")
for name, r in ours.items():
    p = peers.get(name)
    if not p:
        print(f"{name:24s} {r['median_us']:10.1f} {'-':>12s}")
        continue
    best = min(((v["total_us"], k) for k, v in p.items() if isinstance(v, dict) and "total_us" in v), default=None)
    if best is None:
        print(f"{name:24s} {r['median_us']:10.1f} {'(errors)':>12s}")
        continue
    print(f"{name:24s} {r['median_us']:10.1f} {best[1]:>12s} {best[0]:9.1f} {best[0] / r['median_us']:7.2f}x")
