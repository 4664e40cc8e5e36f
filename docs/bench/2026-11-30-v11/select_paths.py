# Which path pq_select takes on each row of a shape and data family, in pure Python: the family's
# logic of tests/support/dist.rs (Python's RNG, not the bench's draws), inner product, f32 scores,
# the kernel's 64-bit selection keys, first filter, refinements (Filter::refine / narrow_to),
# tie handling and emit_by_buckets' refusal rule, as in kernels-gpu/src/select at main 230a052.
# Usage: python3 select_paths.py SHAPE FAMILY [ROWS]   (e.g. hub_m2c64_k3020 llm 32)
import bisect, math, random, struct, sys
SHAPES = {
    "hub_m2c64_k3020": dict(h=32, hkv=8, n=31872, d=128, m=2, c=64, k=3020),
    "hub_m4c256_k6300": dict(h=32, hkv=8, n=31872, d=128, m=4, c=256, k=6300),
    "decode_b1_k2048": dict(h=32, hkv=8, n=31872, d=128, m=16, c=256, k=2048),
}
HIST_BINS, DIGIT_BITS, TIE_CAPACITY, THREADS, MAX_CMP = 1024, 10, 4096, 1024, 64
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
def order_key(s):
    bits = struct.unpack("I", struct.pack("f", s + 0.0))[0]
    return bits ^ (0xFFFFFFFF if bits >> 31 else 0x80000000)
def key_of(s, i): return (order_key(s) << 32) | (~i & 0xFFFFFFFF)

def generate(sh, family, rng):
    d, m, c, hkv, n = sh["d"], sh["m"], sh["c"], sh["hkv"], sh["n"]
    ds, g = d // m, sh["h"] // hkv
    q = [[rng.uniform(-1, 1) for _ in range(d)] for _ in range(sh["h"])]
    cb = [[[[rng.uniform(-1, 1) for _ in range(ds)] for _ in range(c)] for _ in range(m)] for _ in range(hkv)]
    if family == "uniform":
        codes = [[[rng.randrange(c) for _ in range(m)] for _ in range(n)] for _ in range(hkv)]
    elif family == "llm":
        for t in rng.sample(range(d), 4):
            qs, cs = rng.uniform(10, 20), rng.uniform(10, 20)
            for row in q: row[t] *= qs
            for kv in range(hkv):
                for cen in range(c): cb[kv][t // ds][cen][t % ds] *= cs
        cdf, acc = [], 0.0
        for r in range(1, c + 1):
            acc += r ** -1.1; cdf.append(acc)
        perms = [[rng.sample(range(c), c) for _ in range(m)] for _ in range(hkv)]
        codes = [[[perms[kv][j][min(bisect.bisect_right(cdf, rng.random() * acc), c - 1)] for j in range(m)]
                  for _ in range(n)] for kv in range(hkv)]
    elif family == "narrow":
        outl = [[rng.randrange(c) for _ in range(m)] for _ in range(hkv)]
        for kv in range(hkv):
            for j in range(m):
                cb[kv][j][outl[kv][j]] = [math.copysign(0.5 + 0.5 * abs(x), x) * 50 for x in cb[kv][j][outl[kv][j]]]
        codes = []
        for kv in range(hkv):
            rows = []
            for _ in range(n):
                code = [rng.randrange(c) for _ in range(m)]
                for j in range(m):
                    while code[j] == outl[kv][j]: code[j] = rng.randrange(c)
                if rng.random() < 1e-4:
                    j = rng.randrange(m); code[j] = outl[kv][j]
                rows.append(code)
            codes.append(rows)
    return q, cb, codes, g, ds

def simulate(sh, q, cb, codes, row, g, ds):
    m, c, n, k = sh["m"], sh["c"], sh["n"], sh["k"]
    kv = row // g
    tables = [[f32(sum(q[row][j * ds + e] * cb[kv][j][cen][e] for e in range(ds))) for cen in range(c)] for j in range(m)]
    lo, hi = sum(min(t) for t in tables), sum(max(t) for t in tables)
    keys = []
    for i, code in enumerate(codes[kv]):
        s = 0.0
        for j in range(m): s = f32(s + tables[j][code[j]])
        keys.append(key_of(s, i))
    scale = HIST_BINS / (hi - lo)
    def score_of(key):
        o = key >> 32
        return struct.unpack("f", struct.pack("I", (o & 0x7FFFFFFF) if o >> 31 else (~o & 0xFFFFFFFF)))[0]
    bins = [min(max(int((score_of(x) - lo) * scale), 0), HIST_BINS - 1) for x in keys]
    hist = [0] * HIST_BINS
    for b in bins: hist[b] += 1
    above, b = 0, HIST_BINS - 1
    while above + hist[b] < k: above += hist[b]; b -= 1
    tied_keys = [x for x, bb in zip(keys, bins) if bb == b]
    remaining, sweeps = k - above, 0
    # fixed bits: those the bin's first and last possible keys share (first_filter)
    bin_lo = order_key(f32(lo + b / scale)) << 32
    bin_hi = order_key(f32(lo + (b + 1) / scale)) << 32 if b + 1 < HIST_BINS else 1 << 64
    fixed = 64 - ((bin_lo ^ (bin_hi - 1)).bit_length())
    ranked = lambda fx: fx >= 32
    while len(tied_keys) > TIE_CAPACITY and fixed < 64 and not ranked(fixed):
        sweeps += 1
        least, greatest = min(tied_keys), max(tied_keys)
        shared = 64 - (least ^ greatest).bit_length()
        width = min(DIGIT_BITS, 64 - fixed)
        digit = lambda x: (x << fixed & (2**64 - 1)) >> (64 - width)
        h = {}
        for x in tied_keys: h[digit(x)] = h.get(digit(x), 0) + 1
        acc, dig = 0, max(h)
        for dd in sorted(h, reverse=True):
            if acc + h[dd] >= remaining: dig = dd; break
            acc += h[dd]
        remaining -= acc
        tied_keys = [x for x in tied_keys if digit(x) == dig]
        fixed += width
        # Filter::narrow_to: the range of the keys tied before this digit
        if shared > fixed: fixed = shared
    tied = len(tied_keys)
    is_ranked = ranked(fixed)
    threshold = sorted(tied_keys, reverse=True)[remaining - 1]
    taken = sorted([x for x in keys if x >= threshold], reverse=True)
    assert len(taken) == k
    tied_set = set(tied_keys)
    above_keys = [x for x in taken if x not in tied_set] if not is_ranked else taken[:k - remaining]
    tie_sort = (not is_ranked) and tied * tied > 64 * THREADS
    # emit_by_buckets over the keys above the ties
    cnt = len(above_keys)
    lo_k, hi_k = min(above_keys), max(above_keys)
    shift = max((hi_k - lo_k).bit_length() - DIGIT_BITS, 0)
    bk = {}
    for x in above_keys: bk[(x - lo_k) >> shift] = bk.get((x - lo_k) >> shift, 0) + 1
    squares = sum(v * v for v in bk.values())
    return dict(first_bin_keys=len([1 for bb in bins if bb == b]), sweeps=sweeps, tied=tied, ranked=is_ranked,
                tie_sort=tie_sort, above=cnt, squares_per_key=squares / cnt, largest_bucket=max(bk.values()),
                output="sorted" if squares > MAX_CMP * cnt else "buckets")

shape, family = sys.argv[1], sys.argv[2]
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 8
rng = random.Random(1)
sh = SHAPES[shape]
q, cb, codes, g, ds = generate(sh, family, rng)
print(f"{shape} {family}: per row: keys in the k-th key's first bin, refinement sweeps, tied after them, ranked by index, "
      f"tie sort, keys above the ties, bucket comparisons per key, largest bucket, output")
for row in range(rows):
    r = simulate(sh, q, cb, codes, row, g, ds)
    print(f"row {row:2}: bin {r['first_bin_keys']:6} sweeps {r['sweeps']} tied {r['tied']:5} ranked {r['ranked']!s:5} "
          f"tie_sort {r['tie_sort']!s:5} above {r['above']:5} cmp/key {r['squares_per_key']:6.0f} "
          f"largest {r['largest_bucket']:5} {r['output']}")
