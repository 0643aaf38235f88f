#!/bin/bash
# Session 13: where an 8B decode step from an empty cache goes. Builds (run.sh exec), then
# one profiled step at token 64 of tg128's conditions (CR_BENCH_PROFILE=2) under ncu, kernel
# times grouped by tests/device/ncu_times.py, and the decode rows twice without the profiler.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
M=${CR_AB_MODEL:-8B Q4_K}
bash tests/device/run.sh exec true || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
for r in 1 2; do CR_BENCH_MODEL="$M" build/bench/cuda_bench --parts decode 2>&1 | grep -E "decode|empty cache|half-full" | cut -c1-160; done
CR_BENCH_PROFILE=2 CR_BENCH_MODEL="$M" ncu --csv --metrics gpu__time_duration.sum --profile-from-start off \
   build/bench/cuda_bench --parts decode > $OUT/ncu_empty.csv 2> $OUT/ncu_empty.err
python3 tests/device/ncu_times.py $OUT/ncu_empty.csv | head -40
