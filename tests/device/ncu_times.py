#!/usr/bin/python3
# Per-kernel GPU time of one profiled decode step, from
#   ncu --csv --metrics gpu__time_duration.sum --profile-from-start off PROGRAM > x.csv
# (CR_BENCH_PROFILE=1 cuda_bench): kernels grouped by name, with count, total and mean in us,
# the largest first, and the sum. ncu runs kernels one by one, so the sum exceeds the step.
import csv, sys, re
from collections import defaultdict
lines = [l for l in open(sys.argv[1], errors="replace") if l.startswith('"')]
rows = list(csv.reader(lines))
h = rows[0]
ki, mi, vi, ui = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value"), h.index("Metric Unit")
tot = defaultdict(float); cnt = defaultdict(int)
for r in rows[1:]:
    if r[mi] != "gpu__time_duration.sum": continue
    v = float(r[vi].replace(",", ""))
    v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(r[ui], 1.0)
    name = re.sub(r"\(.*", "", r[ki]).replace("void ", "")[:70]
    tot[name] += v; cnt[name] += 1
s = sum(tot.values())
print("%-70s %5s %9s %8s" % ("kernel", "n", "total us", "mean"))
for k in sorted(tot, key=lambda k: -tot[k]):
    print("%-70s %5d %9.1f %8.2f" % (k, cnt[k], tot[k], tot[k] / cnt[k]))
print("sum %.1f us over %d kernels" % (s, sum(cnt.values())))
