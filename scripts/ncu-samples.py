"""Where a kernel's warps stall, per SASS instruction, from ncu's warp-state samples.

python3 ncu-samples.py SAMPLES.csv[.gz] [--top N] [--window N] [--from A --to B] [--against OTHER]

SAMPLES.csv is ncu's source page for one kernel launch, as run-ncu.sh writes it with
NCU_SAMPLES=1 (`ncu --section SourceCounters --warp-sampling-interval 0 --page source
--print-source sass --csv`). Prints:
- every stall reason's share of the samples, and the instructions executed per warp;
- the N instructions with the most samples that are not barrier waits (a warp waiting at a
  barrier waits for the others; the others' stalls say why);
- the samples and executed instructions per window of N instructions, which places the
  kernel's time in its code (a loop shows as a window with many executions);
- with --from/--to, every instruction of that range with its samples, to read a loop;
- with --against OTHER (the same kernel's samples on other data, e.g. LLM-like against uniform
  rows), the windows whose executed instructions or samples differ, and by how much: where the
  slower data's extra work is (perf-notes v22 found LLM-like rows' extra work this way).
"""
import argparse
import collections
import csv
import gzip
import io


def load(path):
    """(header, rows): the rows of ncu's per-instruction table."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        lines = [line for line in f if line.startswith('"')]
    header, rows = None, []
    for r in csv.reader(io.StringIO("".join(lines))):
        if r[0] == "Address":
            header = r
        elif header and len(r) == len(header) and r[0].startswith("0x"):
            rows.append(r)
    if header is None:
        raise SystemExit(f"{path}: no per-instruction table (was it run with --page source --csv?)")
    return header, rows


def count(value):
    return int(value) if value not in ("", "-") else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--from", dest="first", type=int)
    ap.add_argument("--to", dest="last", type=int)
    ap.add_argument("--against")
    a = ap.parse_args()
    header, rows = load(a.samples)
    samples = header.index("Warp Stall Sampling (All Samples)")
    executed = header.index("Instructions Executed")
    reasons = [j for j, h in enumerate(header) if h.startswith("stall_") and "(Not" not in h]
    barrier = header.index("stall_barrier")

    totals = collections.Counter()
    for r in rows:
        for j in reasons:
            totals[header[j][len("stall_"):]] += count(r[j])
    all_samples = sum(totals.values()) or 1
    first_warps = count(rows[0][executed]) or 1  # the first instruction runs once per warp
    print(f"{len(rows)} instructions, {all_samples} samples, "
          f"{sum(count(r[executed]) for r in rows) / first_warps:.0f} instructions executed per warp")
    print("stalls: " + ", ".join(f"{k} {100 * v / all_samples:.0f} %" for k, v in totals.most_common(8)))

    def reasons_of(r):
        return " ".join(f"{header[j][len('stall_'):]}={r[j]}" for j in reasons if count(r[j]))

    print(f"\nthe {a.top} instructions with the most samples outside barrier waits:")
    busy = sorted(range(len(rows)), key=lambda i: -sum(count(rows[i][j]) for j in reasons if j != barrier))
    for i in sorted(busy[: a.top]):
        r = rows[i]
        print(f"{i:6d} {r[samples]:>6s}  {r[1].strip()[:60]:60s} {reasons_of(r)}")

    print(f"\nper window of {a.window} instructions (windows with samples or executions):")
    for start in range(0, len(rows), a.window):
        part = rows[start:start + a.window]
        s, e = sum(count(r[samples]) for r in part), sum(count(r[executed]) for r in part)
        if s or e:
            print(f"{start:6d} samples {s:6d} ({100 * s / all_samples:4.1f} %)  executed {e:9d}")

    if a.against:
        other_header, other = load(a.against)
        if len(other) != len(rows):
            raise SystemExit(f"{a.against}: another kernel ({len(other)} instructions, not {len(rows)})")
        print(f"\nper window of {a.window} instructions, this file less {a.against} (windows that differ):")
        for start in range(0, len(rows), a.window):
            part = range(start, min(start + a.window, len(rows)))
            e = sum(count(rows[i][executed]) - count(other[i][executed]) for i in part)
            s = sum(count(rows[i][samples]) - count(other[i][samples]) for i in part)
            if e or abs(s) > 0.005 * all_samples:
                print(f"{start:6d} samples {s:+6d}  executed {e:+9d}")

    if a.first is not None:
        print(f"\ninstructions {a.first}..{a.last}:")
        for i in range(a.first, min(a.last or a.first + 100, len(rows))):
            r = rows[i]
            print(f"{i:6d} {r[samples]:>5s} {r[executed]:>7s}  {r[1].strip()[:70]:70s} {reasons_of(r)}")


if __name__ == "__main__":
    main()
