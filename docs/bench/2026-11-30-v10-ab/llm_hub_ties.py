# The llm family of tests/support/dist.rs on hub_m2c64_k3020, four rows, in pure Python: where the
# k-th key falls, how many keys tie with it, how the taken keys group into exact scores, and what
# emit_by_buckets would spend on them (1024 linear buckets over the taken keys' range).
# Output: llm_hub_ties.txt (python3 llm_hub_ties.py).
import random, bisect, collections
random.seed(1)
d, m, c, n, k = 128, 2, 64, 31872, 3020
ds = d // m
for row in range(4):
    q = [random.uniform(-1, 1) for _ in range(d)]
    cb = [[[random.uniform(-1, 1) for _ in range(ds)] for _ in range(c)] for _ in range(m)]
    chans = random.sample(range(d), 4)
    for t in chans:
        qs, cs = random.uniform(10, 20), random.uniform(10, 20)
        q[t] *= qs
        for cen in range(c):
            cb[t // ds][cen][t % ds] *= cs
    w = [r ** -1.1 for r in range(1, c + 1)]
    cdf = []
    acc = 0
    for x in w:
        acc += x; cdf.append(acc)
    perms = [random.sample(range(c), c) for _ in range(m)]
    table = [[sum(q[j * ds + e] * cb[j][cen][e] for e in range(ds)) for cen in range(c)] for j in range(m)]
    keys = []
    for i in range(n):
        codes = tuple(perms[j][min(bisect.bisect_right(cdf, random.random() * acc), c - 1)] for j in range(m))
        keys.append((table[0][codes[0]] + table[1][codes[1]], codes))
    order = sorted(range(n), key=lambda i: -keys[i][0])
    kth = keys[order[k - 1]][0]
    above = sum(1 for s, _ in keys if s > kth)
    tied = sum(1 for s, _ in keys if s == kth)
    groups = collections.Counter(keys[i][1] for i in order[:k])
    big = sorted(groups.values(), reverse=True)
    lo, hi = keys[order[k - 1]][0], keys[order[0]][0]
    # emit_by_buckets-like: 1024 buckets over the taken keys' score range
    b = collections.Counter(min(int((keys[i][0] - lo) / (hi - lo) * 1024), 1023) for i in order[:k])
    sq = sum(v * v for v in b.values())
    print(f"row {row}: above {above}, tied at threshold {tied}, distinct code pairs in top k {len(groups)}, largest groups {big[:5]}, bucket sum of squares {sq} ({sq / k:.0f} per key)")
    tlo = sum(min(t) for t in table); thi = sum(max(t) for t in table)
    binof = lambda s: min(int((s - tlo) / (thi - tlo) * 1024), 1023)
    kb = binof(kth)
    inbin = sum(1 for s, _ in keys if binof(s) == kb)
    print(f"   table range [{tlo:.1f}, {thi:.1f}], top score {hi:.1f}, k-th {kth:.1f}: its bin holds {inbin} keys")
