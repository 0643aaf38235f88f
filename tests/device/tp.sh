bash tests/device/run.sh 2>&1 | grep -E "passed|FAIL"
grep -E "CPU engine|vs one GPU|FAIL|SKIP|tensor|640 tokens" $OUT/cuda_tp.txt
grep -E "bit-identical|DIFFER" $OUT/cuda_e2e.txt
export LD_LIBRARY_PATH=$PWD/.carry/lib
M=.carry/models/stories260K.gguf
./cascade-read -m $M --device cuda --generate "" -n 120 > $OUT/g1.txt 2>$OUT/g1.err; echo "1 GPU rc=$?"
CR_GPUS_SIMULATE=1 ./cascade-read -m $M --device cuda --gpus 2 --generate "" -n 120 --verbose > $OUT/g2.txt 2>$OUT/g2.err; echo "2 sim rc=$?"; grep -E "device" $OUT/g2.err
CR_GPUS_SIMULATE=1 ./cascade-read -m $M --device cuda --gpus 4 --generate "" -n 120 > $OUT/g4.txt 2>&1; echo "4 sim rc=$?"
cmp $OUT/g1.txt $OUT/g2.txt && echo "2 simulated GPUs: same text"; cmp $OUT/g1.txt $OUT/g4.txt && echo "4 simulated GPUs: same text"
head -c 300 $OUT/g1.txt; echo
./cascade-read -m $M --device cuda --gpus 2 --generate "" -n 4; echo "real --gpus 2 rc=$?"
./cascade-read -m $M --device cuda --gpus 3 --generate "" -n 4; echo "--gpus 3 rc=$?"
# --grep on several GPUs (the probe summed over the ranks) against one GPU: the same lines
LOG=$(ls .carry/data/logs/*/*.log | head -1)
head -c 60000 $LOG > $OUT/log.txt
./cascade-read -m $M --device cuda --grep "error in the kernel" -m 10 -n $OUT/log.txt > $OUT/gr1.txt 2>$OUT/gr1.err; echo "grep 1 GPU rc=$?"
CR_GPUS_SIMULATE=1 ./cascade-read -m $M --device cuda --gpus 2 --grep "error in the kernel" -m 10 -n $OUT/log.txt > $OUT/gr2.txt 2>$OUT/gr2.err; echo "grep 2 sim rc=$?"
cmp $OUT/gr1.txt $OUT/gr2.txt && echo "--grep on 2 simulated GPUs: the same 10 lines as on 1"; head -3 $OUT/gr1.txt | cut -c1-150
