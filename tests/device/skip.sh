#!/bin/bash
# Session 10: the register-direct decode attention skips splits with no valid key (build/)
# against the previous order (build2/, -DCRK_DRD_NOSKIP), alternated in one run; decode with a
# full cache and from an empty one (tg128's conditions).
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
make -j16 B=build2 CUDA=1 UI_LIBS="-lncursesw -ltinfo" EXTRA_CFLAGS=-I.carry/include LDFLAGS="-pthread -L.carry/lib" \
     EXTRA_NVFLAGS=-DCRK_DRD_NOSKIP build2/bench/cuda_bench > $OUT/build2.log 2>&1 || { tail -5 $OUT/build2.log; exit 1; }
for r in 1 2; do
for b in build build2; do
  echo "== $b"
  $b/bench/cuda_bench --parts parts 2>&1 | grep -E "decode attention.*2 shared" | sed 's/.*stages per warp.//'
  $b/bench/cuda_bench --parts decode 2>&1 | tee -a $OUT/dec_${b}_$r.txt | grep -E "^   [0-9]|decode:|empty cache" | sed 's/stride 4096: prefill.*//; s/roofline \(.*\) (.*) ->/roofline \1 ->/' | cut -c1-120
done
done
