# cascade-read build.
#   make            ./cascade-read (with CUDA kernels when nvcc is on PATH)
#   make CUDA=0     CPU-only build
#   make test       every test (normal build, then an ASan+UBSan build of the CPU tests)
#   make run        install missing Debian packages (as root), build, run the main job
#   make bench      benchmark tables
#   make eval       evaluation tables (perplexity, needle/passkey)
#   make install    PREFIX=/usr/local
#
# Sources are globbed: engine/*.c, engine/*.cpp (the sentencepiece shim), app/*.c,
# ui/*.c, kernels/*.cu. engine/cuda_*.c (CUDA host code) is built only with CUDA=1.
# Tests: tests/engine_*.c link the engine only, tests/app_*.c engine+app,
# tests/ui_*.c everything; tests/cuda_*.c are GPU tests (engine only, SKIP without a GPU).

B      ?= build
PREFIX ?= /usr/local
SAN    ?= 0
NVCC   ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA   ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
VERSION := 0.1.0

CC     ?= gcc
CXX    ?= g++
OPT    ?= -O3 -march=native
CFLAGS_BASE = -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -Wno-format-truncation -D_GNU_SOURCE -MMD -MP \
              -Iengine -Iapp -Iui -I/usr/include/libxml2 -DCR_VERSION='"$(VERSION)"' -pthread
CXXFLAGS_BASE = -std=c++17 -g $(OPT) -Wall -Wextra -Werror -MMD -MP -Iengine -pthread
ifeq ($(SAN),1)
  SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  CUDA := 0
endif
ifeq ($(CUDA),1)
  CFLAGS_BASE += -DCR_CUDA -I$(CUDA_HOME)/include
  CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
  NVFLAGS = -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90 \
            -Xcompiler -Wall,-Wextra,-Werror,-fPIC -Iengine -Ikernels --expt-relaxed-constexpr -MMD -MP
endif
CFLAGS   = $(CFLAGS_BASE) $(SANFLAGS) $(EXTRA_CFLAGS)
CXXFLAGS = $(CXXFLAGS_BASE) $(SANFLAGS)
LDFLAGS  = $(SANFLAGS) -pthread

ENGINE_LIBS = -lsentencepiece -lpcre2-8 -lstdc++ -lm $(CUDA_LIBS)
APP_LIBS    = -lzip -lxml2 -lcurl -lz
UI_LIBS     = -lncursesw

ENGINE_C   = $(filter-out engine/cuda_%.c,$(wildcard engine/*.c))
ifeq ($(CUDA),1)
  ENGINE_C += $(wildcard engine/cuda_*.c)
  CU_SRC    = $(wildcard kernels/*.cu)
endif
ENGINE_OBJ = $(ENGINE_C:%.c=$(B)/%.o) $(patsubst %.cpp,$(B)/%.o,$(wildcard engine/*.cpp)) $(CU_SRC:%.cu=$(B)/%.o)
APP_OBJ    = $(patsubst %.c,$(B)/%.o,$(filter-out app/main.c,$(wildcard app/*.c)))
UI_OBJ     = $(patsubst %.c,$(B)/%.o,$(wildcard ui/*.c))

ENGINE_TESTS = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/engine_*.c))
APP_TESTS    = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/app_*.c))
UI_TESTS     = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/ui_*.c))
CUDA_TESTS   = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/cuda_*.c))
TOOLS        = $(patsubst tests/tools/%.c,$(B)/tools/%,$(wildcard tests/tools/*.c))
BENCHES      = $(patsubst tests/bench/%.c,$(B)/bench/%,$(wildcard tests/bench/*.c))
ALL_TESTS    = $(ENGINE_TESTS) $(APP_TESTS) $(UI_TESTS) $(CUDA_TESTS)

BIN = cascade-read
ifneq ($(B),build)
  BIN = $(B)/cascade-read
endif

.PHONY: all test test-fast test-asan run bench eval install clean deps tests-build engine-tests
all: $(BIN)

$(BIN): $(B)/app/main.o $(ENGINE_OBJ) $(APP_OBJ) $(UI_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(UI_LIBS) $(APP_LIBS) $(ENGINE_LIBS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(B)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c -o $@ $<
$(B)/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) $(EXTRA_NVFLAGS) -c -o $@ $<

$(B)/tests/engine_%: $(B)/tests/engine_%.o $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(ENGINE_LIBS)
$(B)/tests/cuda_%: $(B)/tests/cuda_%.o $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(ENGINE_LIBS)
$(B)/tests/app_%: $(B)/tests/app_%.o $(APP_OBJ) $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(APP_LIBS) $(ENGINE_LIBS)
$(B)/tests/ui_%: $(B)/tests/ui_%.o $(UI_OBJ) $(APP_OBJ) $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(UI_LIBS) $(APP_LIBS) $(ENGINE_LIBS)
$(B)/tools/%: $(B)/tests/tools/%.o $(APP_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(APP_LIBS) $(ENGINE_LIBS)
$(B)/bench/cuda_%: $(B)/tests/bench/cuda_%.o $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(ENGINE_LIBS)
$(B)/bench/%: $(B)/tests/bench/%.o $(APP_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(APP_LIBS) $(ENGINE_LIBS)

tests-build: $(BIN) $(ALL_TESTS) $(TOOLS)
engine-tests: $(ENGINE_TESTS) $(CUDA_TESTS) $(TOOLS)

# make test: all tests on the normal build, then the CPU tests under ASan+UBSan.
test: deps
	$(MAKE) --no-print-directory tests-build
	$(MAKE) --no-print-directory B=build-asan SAN=1 CUDA=0 OPT='-O1 -march=native' tests-build
	sh tests/run.sh build build-asan

test-fast: tests-build
	sh tests/run.sh $(B)

# make run: the main job on the default model (the first the binary finds: $$CASCADE_MODEL, the
# config file, $$XDG_DATA_HOME/cascade-read/models; else the story model in ../shared/models)
# and a default document: on a terminal the full-screen interface, otherwise a question
# with its cited sources.
RUN_DOC ?= ../shared/data/books/txt/16-0.txt
RUN_QUESTION ?= Who is Peter Pan?
run: deps $(BIN)
	@m=""; if ! ./$(BIN) --info >/dev/null 2>&1 && [ -f ../shared/models/stories260K.gguf ]; then \
	  m="--model ../shared/models/stories260K.gguf"; fi; \
	if [ -t 0 ] && [ -t 1 ]; then set -x; ./$(BIN) $$m $(RUN_DOC); \
	else set -x; ./$(BIN) $$m --ask "$(RUN_QUESTION)" -n 64 $(RUN_DOC); fi

bench: $(BIN) $(BENCHES) $(TOOLS)
	sh tests/bench/run.sh $(B)

eval: $(BIN) $(TOOLS) $(BENCHES)
	sh tests/eval/run.sh $(B)

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/cascade-read
	install -m 644 man/cascade-read.1 $(DESTDIR)$(PREFIX)/share/man/man1/cascade-read.1

# Debian packages the build and tests need; installed only when missing and only as root.
DEB_PKGS = gcc g++ make pkg-config libsentencepiece-dev libpcre2-dev zlib1g-dev libxml2-dev \
           libcurl4-openssl-dev libzip-dev libncurses-dev tmux python3 python3-numpy python3-sentencepiece
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages (run as root to install):$$missing"; fi; \
	fi

clean:
	rm -rf build build-asan $(BIN)

# app/prompts.c embeds assets/* with .incbin (not seen by -MMD)
$(B)/app/prompts.o: $(wildcard assets/*)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
.SECONDARY:
