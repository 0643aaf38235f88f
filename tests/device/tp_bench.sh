#!/bin/bash
# Issue 10 on one GPU: what the tensor-parallel plumbing costs. Every GPU test first, then the
# Q4_K decode rows of cuda_bench --parts decode on one GPU and as one rank over NCCL
# (CR_BENCH_GPUS=1: the all-reduce after the attention output and the FFN down projection of
# every layer, inside the decode graph), alternated twice.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh > $OUT/tests.txt 2>&1; grep -E "passed|FAIL" $OUT/tests.txt
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry CR_BENCH_MODEL=Q4_K
for r in 1 2; do
  for v in "" 1; do
    echo "== CR_BENCH_GPUS=$v"
    CR_BENCH_GPUS=$v build/bench/cuda_bench --parts decode 2>&1 | grep -E "prefill|decode:|empty cache|tensor" | cut -c1-150
  done
done
