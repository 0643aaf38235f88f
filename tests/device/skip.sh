#!/bin/bash
# Session 10: the register-direct decode attention skips 16-key steps and whole splits with no
# valid key (build/) against skipping splits only (build2/, -DCRK_DRD_NOSTEPSKIP) and neither
# (build3/), alternated in one run; decode with a full cache and from an empty one (tg128's
# conditions), and the decode-parts attention line.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
M="make -j16 CUDA=1 UI_LIBS=-lncursesw\ -ltinfo EXTRA_CFLAGS=-I.carry/include"
for v in "build2 -DCRK_DRD_NOSTEPSKIP" "build3 -DCRK_DRD_NOSKIP -DCRK_DRD_NOSTEPSKIP"; do
  set -- $v; b=$1; shift
  cp -a build $b && rm -f $b/kernels/attn_decode.o $b/bench/cuda_bench
  make -j16 B=$b CUDA=1 UI_LIBS="-lncursesw -ltinfo" EXTRA_CFLAGS=-I.carry/include LDFLAGS="-pthread -L.carry/lib" \
       EXTRA_NVFLAGS="$*" $b/bench/cuda_bench > $OUT/$b.log 2>&1 || { tail -5 $OUT/$b.log; exit 1; }
done
for r in 1 2; do
for b in build build2 build3; do
  echo "== $b"
  $b/bench/cuda_bench --parts parts 2>&1 | grep -E "decode attention.*2 shared" | sed 's/.*stages per warp.//'
  $b/bench/cuda_bench --parts decode > $OUT/d.txt 2>&1; cat $OUT/d.txt >> $OUT/dec_$b.txt
  grep -E "decode:|empty cache" $OUT/d.txt | sed 's/roofline \(.*\) (.*) ->/roofline \1 ->/; s/(tokens 8..127, as tg128)//' | cut -c1-110
done
done
rm -f $OUT/d.txt
