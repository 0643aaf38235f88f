#!/bin/sh
# Passkey retrieval (Mohtashami & Jaggi 2023): "The pass key is N. Remember it. N is the pass
# key." at depth 0..100% of a filler text of about LEN tokens; --ask "What is the pass key?"
# must answer N. Accuracy per length and policy over the depth bins (and 2 keys per bin).
#   tests/eval/passkey.sh BIN MODEL "LENGTHS" "DEPTHS"
BIN=$1; M=$2; LENS=${3:-"2000 4000 8000"}; DEPTHS=${4:-"0 25 50 75 100"}
T=${TMPDIR:-/tmp}/cr_passkey.$$
mkdir -p "$T"; trap 'rm -rf "$T"' EXIT
ctx=$("$BIN" --model "$M" --info 2>/dev/null | awk '$1=="context"{print $2}')
# tokens per filler sentence, measured with the model's tokenizer
fill="The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
ft=$("$BIN" --model "$M" --tokenize "$fill " | wc -w)
[ "$ft" -gt 0 ] || ft=25
printf "| model | length (tokens) | policy |"; for d in $DEPTHS; do printf " %s%% |" "$d"; done; echo " accuracy |"
printf "|---|---:|---|"; for d in $DEPTHS; do printf -- "---:|"; done; echo "---:|"
for len in $LENS; do
  reps=$((len / ft))
  for p in full sink cascade; do
    case $p in
      full) args="--policy full";;
      sink) args="--policy sink";;
      cascade) args="--policy cascade";;
    esac
    row=""; ok=0; tot=0
    for d in $DEPTHS; do
      cell=0
      for key in 68429 31975; do
        at=$((reps * d / 100))
        awk -v n="$reps" -v at="$at" -v k="$key" -v f="$fill" 'BEGIN{
          print "There is an important piece of information hidden in this text. Find it and memorize it.";
          for (i = 0; i <= n; i++) { if (i == at) print "The pass key is " k ". Remember it. " k " is the pass key."; print f } }' > "$T/doc.txt"
        if [ "$p" = full ] && [ "$len" -ge "$ctx" ]; then cell=x; break; fi
        out=$("$BIN" --model "$M" $args --ask "What is the pass key?" -n 12 -q "$T/doc.txt" 2>/dev/null | head -1)
        case "$out" in *"$key"*) cell=$((cell + 1)); ok=$((ok + 1));; esac
        tot=$((tot + 1))
      done
      if [ "$cell" = x ]; then row="$row n/a |"; else row="$row $cell/2 |"; fi
    done
    if [ "$tot" -gt 0 ]; then acc=$(awk -v a="$ok" -v b="$tot" 'BEGIN{printf "%.0f%%", 100*a/b}'); else acc="n/a (longer than the context)"; fi
    echo "| $(basename "$M") | $len | $p |$row $acc |"
  done
done
