#!/bin/bash
# Session 10: decode with the following weights prefetched into L2 during the attention
# (CRK_L2PF_MB), A/B in one run; then per-kernel times of one decode step (ncu).
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
build/bench/cuda_bench --parts parts 2>&1 | grep -E "decode attention.*2 shared" | sed 's/.*stages per warp.//'
for r in 1 2; do
for v in 0 16 30 45; do
  echo "== CRK_L2PF_MB=$v"
  CRK_L2PF_MB=$v build/bench/cuda_bench --parts decode 2>&1 | tee -a $OUT/dec_$r.txt | grep -E "decode:|L2 prefetch" | sed 's/.*GiB, decode/decode/' | cut -c1-70
done
done
for m in "8B Q4_K" "1B Q4_K"; do
  f=$OUT/ncu_${m// /_}.csv
  CR_BENCH_PROFILE=1 CR_BENCH_MODEL="$m" timeout 200 ncu --clock-control none --profile-from-start off --csv --metrics gpu__time_duration.sum \
     build/bench/cuda_bench --parts decode > $f 2>&1
  echo "== ncu $m"; python3 tests/device/ncu_times.py $f | head -24
done
