#!/usr/bin/python3
# Summarizes Nsight Compute's per-instruction stall sampling of one kernel: the share of
# samples by opcode and the 25 instructions with most samples, with their top stall reasons.
#   ncu --set full --import-source yes -k regex:KERNEL --launch-count 1 -o x PROGRAM...
#   ncu --import x.ncu-rep --page source --csv --print-source sass > x.csv
#   /usr/bin/python3 tests/device/ncu_stalls.py x.csv
import csv, sys
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
hdr = None
for i, r in enumerate(rows):
    if any("Source" == c for c in r) and any("Warp Stall Sampling" in c for c in r):
        hdr = i; break
if hdr is None:
    print("no header"); print(rows[:3]); sys.exit()
h = rows[hdr]
si = h.index("Source")
wi = [j for j, c in enumerate(h) if c.startswith("Warp Stall Sampling (All")][0]
stall_cols = [j for j, c in enumerate(h) if c.startswith("stall_")] if any(c.startswith("stall_") for c in h) else []
data = []
tot = 0
for r in rows[hdr + 1:]:
    if len(r) <= wi: continue
    try: v = float(r[wi] or 0)
    except: continue
    tot += v
    data.append((v, r))
print("total samples", tot, "instructions", len(data))
# opcode histogram
from collections import Counter
c = Counter()
for v, r in data:
    op = r[si].strip().split()[0] if r[si].strip() else "?"
    if op.startswith("@"): op = r[si].strip().split()[1]
    c[op.split(".")[0]] += v
for op, v in c.most_common(15): print(f"{op:12s} {100*v/tot:5.1f}%")
print("top instructions:")
for v, r in sorted(data, key=lambda x: -x[0])[:25]:
    extra = ""
    if stall_cols:
        st = sorted(((float(r[j] or 0), h[j]) for j in stall_cols), reverse=True)[:3]
        extra = " ".join(f"{n}={x:.0f}" for x, n in st if x > 0)
    print(f"{100*v/tot:5.1f}%  {r[si][:60]:60s} {extra}")
