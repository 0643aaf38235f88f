#!/bin/sh
# make eval: the paper's experiments in miniature with the story models (quality is
# low for such tiny models; the tables say so). Streaming perplexity over two books
# for full (as far as the context allows), sink and cascade at equal N, then needle recall.
B=${1:-build}
cd "$(dirname "$0")/../.." || exit 2
S=${CR_SHARED:-../shared}
BIN=./cascade-read; [ "$B" = build ] || BIN=$B/cascade-read
LIMIT=${CR_EVAL_TOKENS:-60000}
echo "Streaming perplexity (lower is better), cache N=256 S=4 C=4 stride 64; 'full' holds"
echo "the model's whole 512-token context and stops there; first $LIMIT tokens of each book."
echo
echo "| model | book | policy | tokens | perplexity |"
echo "|---|---|---|---:|---:|"
for m in stories260K.gguf TinyStories-656K-Q8_0.gguf; do
  for book in 1342-0.txt 2701-0.txt; do
    for p in full sink cascade; do
      case $p in
        full) args="--policy full --cache 508 --sinks 4 --stride 64 --max-tokens 508";;
        sink) args="--policy sink --cache 256 --sinks 4 --stride 64 --max-tokens $LIMIT";;
        cascade) args="--policy cascade --cache 256 --cascades 4 --sinks 4 --stride 64 --max-tokens $LIMIT";;
      esac
      out=$($BIN --model "$S/models/$m" --perplexity "$S/data/books/txt/$book" $args -q 2>&1) || { echo "| $m | $book | $p | error: $out | |"; continue; }
      tk=$(echo "$out" | awk '$1=="tokens"{print $2}'); pp=$(echo "$out" | awk '$1=="perplexity"{print $2}')
      echo "| $m | $book | $p | $tk | $pp |"
    done
  done
done
echo
for m in stories260K.gguf TinyStories-656K-Q8_0.gguf; do
  $B/bench/needle "$S/models/$m" 256; echo
done
# Passkey retrieval and grep-by-question recall: the story models, or CASCADE_TEST_MODEL when
# set (then longer inputs: CR_EVAL_PASSKEY_LENGTHS, default 2000..1000000 tokens).
if [ -n "$CASCADE_TEST_MODEL" ]; then
  MODELS="$CASCADE_TEST_MODEL"; LENS=${CR_EVAL_PASSKEY_LENGTHS:-"2000 8000 32000 128000 1000000"}
else
  MODELS="$S/models/stories260K.gguf $S/models/TinyStories-656K-Q8_0.gguf"; LENS=${CR_EVAL_PASSKEY_LENGTHS:-"1000 4000"}
fi
echo "Passkey retrieval (--ask, greedy, default cache for the model; 'full' only below the context):"
echo
for m in $MODELS; do sh tests/eval/passkey.sh "$BIN" "$m" "$LENS"; echo; done
echo "Grep by question, recall@K of an event template's lines (2000-line loghub logs) vs grep -i KEYWORD:"
echo
for m in $MODELS; do echo "$(basename "$m"):"; echo; sh tests/eval/grep_recall.sh "$BIN" "$m" 10 50; echo; done
