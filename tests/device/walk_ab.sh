#!/bin/bash
# Session 12: decode rows (full, empty, half-full cache) of the new decode attention against
# the previous commit's (a copy of its tree in .carry/old, built here with the same
# cuda_bench.c), alternated twice in one run, after every GPU test. Prepare the copy here first:
#   rm -rf .carry/old && mkdir -p .carry/old && git archive f6ec554~1 | tar x -C .carry/old &&
#   cp tests/bench/cuda_bench.c .carry/old/tests/bench/
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
grep -E "valid steps only|empty splits skipped|register-direct kernel on" $OUT/cuda_kernels.txt
( cd .carry/old && mkdir -p .carry && ln -sfn ../lib .carry/lib && ln -sfn ../include .carry/include && \
  make -j16 CUDA=1 EXTRA_CFLAGS=-I../include LDFLAGS="-pthread -L../lib" build/bench/cuda_bench > $OUT/old_build.log 2>&1 ) || { tail -5 $OUT/old_build.log; exit 1; }
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
for r in 1 2; do
  for v in new old; do
    echo "== $v"
    B=build/bench/cuda_bench; W=1
    [ $v = old ] && B=.carry/old/build/bench/cuda_bench
    [ $v = walk0 ] && W=0
    CRK_DRD_WALK=$W CR_BENCH_MODEL="${CR_AB_MODEL:-}" $B --parts decode 2>&1 | grep -E "decode:|empty cache|half-full" | sed 's/(tokens 8..127, as tg128)//' | cut -c1-120
  done
done
