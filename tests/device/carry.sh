#!/bin/sh
# Prepares .carry/ (git-ignored) for a run on the GPU machine, whose image lacks some headers
# and development symlinks: the headers of pcre2, libzip, libxml2 and ncursesw, libzip's
# runtime library, and the story models. Then: run `bash tests/device/run.sh` there with
# carry [".carry"].
set -e
cd "$(dirname "$0")/../.."
S=${CR_SHARED:-../shared}
mkdir -p .carry/include .carry/lib .carry/models
cp /usr/include/pcre2.h /usr/include/zip.h /usr/include/zipconf.h /usr/include/curses.h /usr/include/ncurses.h \
   /usr/include/ncurses_dll.h /usr/include/term.h /usr/include/unctrl.h .carry/include/
cp -r /usr/include/ncursesw /usr/include/libxml2/libxml /usr/include/unicode .carry/include/   # libxml2 headers include ICU types
cp -L /usr/lib/x86_64-linux-gnu/libzip.so.4 .carry/lib/
[ -f /usr/local/cuda/include/nccl.h ] && cp /usr/local/cuda/include/nccl.h .carry/include/   # the image has libnccl but no header
cp "$S"/models/*.gguf .carry/models/
mkdir -p .carry/data/logs && cp -r "$S"/data/logs/loghub_2k .carry/data/logs/
mkdir -p .carry/data/books/txt && cp "$S"/data/books/txt/1342-0.txt .carry/data/books/txt/
du -sh .carry
