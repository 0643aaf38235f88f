#!/bin/bash
# Session 13: decode moving every layer's cache update in one gather / scatter (this tree)
# against the previous commit's tree (a copy in .carry/old, built here with this cuda_bench.c),
# alternated twice in one run, after every GPU test (CR_NO_TESTS=1: build only). Prepare the copy first:
#   rm -rf .carry/old && mkdir -p .carry/old && git archive HEAD~1 | tar x -C .carry/old &&
#   cp tests/bench/cuda_bench.c .carry/old/tests/bench/
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
if [ -n "$CR_NO_TESTS" ]; then bash tests/device/run.sh exec true || exit 1
else bash tests/device/run.sh || exit 1; grep -E "decode steps" $OUT/cuda_e2e.txt; fi
( cd .carry/old && mkdir -p .carry && ln -sfn ../lib .carry/lib && ln -sfn ../include .carry/include && \
  make -j16 CUDA=1 EXTRA_CFLAGS=-I../include LDFLAGS="-pthread -L../lib" build/bench/cuda_bench > $OUT/old_build.log 2>&1 ) || { tail -5 $OUT/old_build.log; exit 1; }
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry CR_BENCH_NO_PP=1
IFS=, read -ra MS <<< "${CR_AB_MODELS:-8B Q4_K,8B BF16}"
for m in "${MS[@]}"; do
  for r in 1 2; do
    for v in new old; do
      echo "== $m $v"
      B=build/bench/cuda_bench
      [ $v = old ] && B=.carry/old/build/bench/cuda_bench
      CR_BENCH_MODEL="$m" $B --parts decode 2>&1 | grep -E "decode:|empty cache|half-full" | sed 's/(tokens 8..127, as tg128)//' | cut -c1-120
    done
  done
done
