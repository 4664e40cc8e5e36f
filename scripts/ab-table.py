"""One table of run-ab.sh's output: a row per (shape, data family), a column per build.

python3 scripts/ab-table.py AB.txt [AB2.txt ...]

Each cell is the build's stream µs, and where the run had `--kernels`, the launches' µs in
brackets, abbreviated (tables, ranges, score, dense, select, ...), in the order they ran. Builds
are columns in the order run-ab.sh first met them ("== BUILD SHAPE" headers).
"""
import re
import sys


def parse(paths):
    """(builds, rows): rows[(build, shape, family)] = (stream µs, [(kernel, µs), ...])."""
    rows, builds = {}, []
    build = shape = current = None
    for path in paths:
        for line in open(path):
            header = re.match(r"== (\S+) (\S+)", line)
            if header:
                build, shape = header.groups()
                if build not in builds:
                    builds.append(build)
                continue
            fields = line.split()
            if len(fields) >= 6 and fields[0] == shape:
                current = (build, shape, fields[1])
                rows[current] = (float(fields[2]), [])
            elif line.strip().startswith("kernels:") and current in rows:
                rows[current][1].extend((k, float(v)) for k, v in re.findall(r"(\w+) ([\d.]+)", line))
    return builds, rows


def cell(row):
    stream, kernels = row
    if not kernels:
        return f"{stream:7.1f}"
    short = " ".join(f"{v:.1f}" for _, v in kernels)
    return f"{stream:7.1f} [{short}]"


def main():
    builds, rows = parse(sys.argv[1:])
    keys = []
    for _, shape, family in rows:
        if (shape, family) not in keys:
            keys.append((shape, family))
    kernel_names = {}
    for (build, _, _), (_, kernels) in rows.items():
        kernel_names.setdefault(build, [k for k, _ in kernels])
    for build in builds:
        if kernel_names.get(build):
            print(f"{build}: kernels in brackets are {', '.join(kernel_names[build])}")
    cells = {key: [cell(rows[(b,) + key]) if (b,) + key in rows else "-" for b in builds] for key in keys}
    width = max([len(b) for b in builds] + [len(c) for cs in cells.values() for c in cs])
    print(f"{'shape':24} {'family':8} " + " | ".join(f"{b:>{width}}" for b in builds))
    for (shape, family), cs in cells.items():
        print(f"{shape:24} {family:8} " + " | ".join(f"{c:>{width}}" for c in cs))


if __name__ == "__main__":
    main()
