#!/usr/bin/env python3
"""Turns `cargo bench` (criterion) output into a table: median time and
throughput per benchmark, with the ratio to the group's `reference` entry
and to the anchor crate's entry (memchr/memmem/httparse/std), all from the
same run.

    cargo bench -p kernels --bench http1 2>&1 | tee b.log
    python3 bench/criterion_table.py b.log
"""
import re
import sys
from collections import OrderedDict

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
TP = {"B/s": 1e-9, "KiB/s": 1024 / 1e9, "MiB/s": 1024**2 / 1e9, "GiB/s": 1024**3 / 1e9,
      "TiB/s": 1024**4 / 1e9}


def parse(lines):
    out = OrderedDict()
    name = None
    for line in lines:
        s = line.strip()
        m = re.match(r"^(\S.*?)\s+time:\s+\[(.*)\]$", s)
        if m:
            name = m.group(1)
            s = "time: [" + m.group(2) + "]"
        elif s and not s.startswith(("time:", "thrpt:", "change:", "Found", "Benchmarking",
                                     "Performance", "No change", "Change within",
                                     "Warning", "Compiling", "Finished", "Running",
                                     "Gnuplot")) and "outlier" not in s and "%" not in s:
            name = s
            continue
        m = re.match(r"^time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", s)
        if m and name:
            out.setdefault(name, {})["ns"] = float(m.group(1)) * UNITS[m.group(2)]
            continue
        m = re.match(r"^thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", s)
        if m and name:
            out.setdefault(name, {})["gbs"] = float(m.group(1)) * TP[m.group(2)]
    return out


def main():
    res = parse(open(sys.argv[1], encoding="utf-8", errors="replace"))
    groups = OrderedDict()
    for full, v in res.items():
        parts = full.split("/")
        if len(parts) == 3:
            group, impl, size = parts
        elif len(parts) == 2:
            group, impl, size = parts[0], parts[1], ""
        else:
            continue
        groups.setdefault((group, size), OrderedDict())[impl] = v
    print("| group | size | impl | median | GB/s | x reference | x anchor |")
    print("|---|---|---|---|---|---|---|")
    for (group, size), impls in groups.items():
        ref = impls.get("reference", {}).get("ns")
        anchor = next((v.get("ns") for k, v in impls.items()
                       if "::" in k or k.startswith(("std", "httparse"))), None)
        for impl, v in impls.items():
            ns = v.get("ns")
            if ns is None:
                continue
            gbs = v.get("gbs")
            r = f"{ref / ns:.1f}x" if ref else ""
            a = f"{anchor / ns:.2f}x" if anchor else ""
            g = f"{gbs:.1f}" if gbs else ""
            print(f"| {group} | {size} | {impl} | {ns:.1f} ns | {g} | {r} | {a} |")


if __name__ == "__main__":
    main()
