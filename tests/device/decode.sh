#!/bin/bash
# Every GPU test, then decode with a full cache and from an empty one (tg128's conditions; the
# register-direct attention's variant that skips empty splits runs while the cache has unfilled
# slots) twice, and the decode-parts attention line. Session 10's decode figures come from it.
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp}
bash tests/device/run.sh || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/lib CR_SHARED=.carry
grep -E "register-direct" $OUT/cuda_kernels.txt | cut -c1-160
for r in 1 2; do
  build/bench/cuda_bench --parts parts 2>&1 | grep -E "decode attention.*2 shared" | sed 's/.*stages per warp.//'
  build/bench/cuda_bench --parts decode > $OUT/d.txt 2>&1; cat $OUT/d.txt >> $OUT/dec.txt
  grep -E "decode:|empty cache" $OUT/d.txt | sed 's/roofline \(.*\) (.*) ->/roofline \1 ->/; s/(tokens 8..127, as tg128)//' | cut -c1-110
done
rm -f $OUT/d.txt
