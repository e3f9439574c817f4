# ttt - Test-Time-Training language models as a Unix toolkit.
#
#   make              library (float32 and float64 builds) + the six programs + tests/refcheck
#   make test         C unit tests, reference vectors, bats CLI tests (the CI command)
#   make install      PREFIX=/usr/local DESTDIR= (binaries, man pages, completions)
#   make config       print what was detected
#
# Knobs: NO_CUDA=1, CUDA_ARCH=90, NO_OMP=1, NO_BLAS=1, FAST=1, ARCH=-march=...

CC      ?= cc
CFLAGS  ?= -O2 -g
ARCH    ?= -march=x86-64-v3
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions

override CFLAGS += $(ARCH) -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -MMD -MP -Ibuild -Ilib
ifeq ($(FAST),1)
override CFLAGS += -O3 -ffast-math
endif
LDLIBS := -lz -lxxhash -lpcre2-8 -lm -lpthread

# ---- detection -------------------------------------------------------------
ifneq ($(NO_OMP),1)
override CFLAGS += -fopenmp
LDLIBS += -fopenmp
HAVE_OMP := yes
else
HAVE_OMP := no
endif

ifneq ($(NO_BLAS),1)
# Prefer Debian's OpenMP build of OpenBLAS: BLAS calls and our own parallel loops then
# share one thread pool instead of two pools spinning against each other. The rpath
# keeps the run-time linker from resolving libopenblas.so.0 to the pthread build.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
OBOMP := /usr/lib/$(MULTIARCH)/openblas-openmp
ifneq ($(and $(HAVE_OMP:no=),$(wildcard $(OBOMP)/libopenblas.so)),)
BLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS := -L$(OBOMP) -Wl,-rpath,$(OBOMP) -lopenblas
HAVE_BLAS := openblas (openmp)
else
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
HAVE_BLAS := openblas
endif
override CFLAGS += -DTTT_HAVE_BLAS $(BLAS_CFLAGS)
LDLIBS += $(BLAS_LIBS)
else
HAVE_BLAS := no (pure C fallback)
endif

# MPI (data-parallel training): optional, detected through mpicc; NO_MPI=1 turns it off.
ifneq ($(NO_MPI),1)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
endif
ifneq ($(MPI_LIBS),)
override CFLAGS += -DTTT_HAVE_MPI $(MPI_CFLAGS)
LDLIBS += $(MPI_LIBS)
HAVE_MPI := yes
else
HAVE_MPI := no
endif

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_ARCH ?= 90
CUDA_SRC := $(wildcard lib/cuda/*.cu)
ifeq ($(NO_CUDA),1)
NVCC :=
endif
ifneq ($(NVCC),)
ifneq ($(CUDA_SRC),)
HAVE_CUDA := yes (sm_$(CUDA_ARCH))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
override CFLAGS += -DTTT_HAVE_CUDA
NVCCFLAGS ?= -O3 -arch=sm_$(CUDA_ARCH) -Xcompiler -fPIC -std=c++17 -lineinfo
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
else
HAVE_CUDA := no (no CUDA sources)
endif
else
HAVE_CUDA := no
endif

# ---- sources -----------------------------------------------------------------
LIB_SRC  := $(sort $(wildcard lib/*.c lib/layers/*.c))
LIB32    := build/libttt.a
LIB64    := build/libttt64.a
CUDA_OBJ := $(if $(HAVE_CUDA:no%=),$(CUDA_SRC:%.cu=build/cuda/%.o))
PROGS    := tokenize pack train eval generate inspect
BINS     := $(PROGS:%=build/ttt-%)
CLI_OBJ  := build/f32/cmd/cli.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tests/%)

all: $(BINS) tests/refcheck tests/refcheck-f32

build/config.h: FORCE
	@mkdir -p build
	@printf '#define TTT_BUILD_CONFIG \\\n  "cuda: %s\\n" \\\n  "openmp: %s\\n" \\\n  "mpi: %s\\n" \\\n  "blas: %s\\n" \\\n  "zlib: " ZLIB_VERSION "\\n" \\\n  "xxhash: " TTT_STR(XXH_VERSION_MAJOR) "." TTT_STR(XXH_VERSION_MINOR) "." TTT_STR(XXH_VERSION_RELEASE) "\\n"\n#define TTT_STR2(x) #x\n#define TTT_STR(x) TTT_STR2(x)\n#include <zlib.h>\n#include <xxhash.h>\n' \
	  "$(HAVE_CUDA)" "$(HAVE_OMP)" "$(HAVE_MPI)" "$(HAVE_BLAS)" > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

build/f32/%.o: %.c build/config.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/f64/%.o: %.c build/config.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTTT_F64 -c $< -o $@

build/cuda/%.o: %.cu $(wildcard lib/cuda/*.cuh lib/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Ilib -c $< -o $@

$(LIB32): $(LIB_SRC:%.c=build/f32/%.o) $(CUDA_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIB64): $(LIB_SRC:%.c=build/f64/%.o) $(CUDA_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

build/ttt-%: build/f32/cmd/ttt-%.o $(CLI_OBJ) $(LIB32)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

REFCHECK_SRC := $(sort $(wildcard tests/refcheck*.c)) tests/refvec.c
tests/refcheck: $(REFCHECK_SRC:%.c=build/f64/%.o) $(LIB64)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

tests/refcheck-f32: $(REFCHECK_SRC:%.c=build/f32/%.o) $(LIB32)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the float64 library: finite differences need it.
build/tests/%: build/f64/tests/unit/%.o build/f64/tests/refvec.o $(LIB64)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Benchmarks (float32, like the tools): tests/bench/*.c -> build/bench/*
BENCH_BIN := $(patsubst tests/bench/%.c,build/bench/%,$(wildcard tests/bench/*.c))
build/bench/%: build/f32/tests/bench/%.o $(LIB32)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
bench: $(BENCH_BIN)

# GPU-only programs, built with nvcc alone: the measured ceilings and the
# inner-kernel labs (every kernel against a float64 or fp32 reference, timed)
ifneq ($(HAVE_CUDA:no%=),)
CUDA_BENCH := build/bench/ceilings build/bench/gemm_shapes build/kernels/inner_linear_lab build/kernels/inner_mlp_lab \
              build/kernels/overlap_lab
build/bench/ceilings build/bench/gemm_shapes: build/bench/%: tests/bench/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -arch=sm_$(CUDA_ARCH) -std=c++17 $< -lcublas -o $@
build/kernels/inner_linear_lab: tests/kernels/inner_linear_lab.cu lib/cuda/ttt_inner_linear.cu lib/cuda/ttt_inner_linear_tc.cu $(wildcard lib/cuda/*.cuh tests/kernels/*.cuh tests/kernels/*.h tests/bf16_bits.h)
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -arch=sm_$(CUDA_ARCH) -std=c++17 -Ilib $(filter %.cu,$^) -o $@
build/kernels/overlap_lab: tests/kernels/overlap_lab.cu lib/cuda/ttt_inner_linear.cu lib/cuda/ttt_inner_linear_tc.cu $(wildcard lib/cuda/*.cuh tests/kernels/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -arch=sm_$(CUDA_ARCH) -std=c++17 -Ilib $(filter %.cu,$^) -lcublas -o $@
build/kernels/inner_mlp_lab: tests/kernels/inner_mlp_lab.cu lib/cuda/ttt_inner_mlp.cu lib/cuda/ttt_inner_mlp_tc.cu $(wildcard lib/cuda/*.cuh tests/kernels/*.cuh tests/bf16_bits.h)
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -arch=sm_$(CUDA_ARCH) -std=c++17 -Ilib $(filter %.cu,$^) -o $@
bench: $(CUDA_BENCH)
endif

lib: $(LIB32) $(LIB64)

# ---- tests -------------------------------------------------------------------
REFVECTORS ?= ../shared/refvectors

check-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

check-ref: tests/refcheck tests/refcheck-f32
	@if [ -d "$(REFVECTORS)" ]; then \
	  ./tests/refcheck $(REFVECTORS)/*/ && ./tests/refcheck-f32 $(REFVECTORS)/*/; \
	else echo "check-ref: $(REFVECTORS) not found, skipped"; fi

check-cli: all build/tests/test_dist build/tests/test_grad_hook
	OMP_WAIT_POLICY=passive TTT_BIN_DIR=$(CURDIR)/build bats tests/cli

# The CUDA attention, depthwise-conv and TTT inner-loop kernels, run on the CPU by host emulators
# of their source (threads as lanes, the PTX fragment semantics): CI has no GPU.
EMU_BIN := $(patsubst tests/unit/%.cpp,build/tests/%,$(wildcard tests/unit/emu_*.cpp))
build/tests/emu_%: tests/unit/emu_%.cpp $(wildcard lib/cuda/attn* lib/cuda/dwconv.cuh lib/cuda/ttt_cuda_internal.cuh \
                   lib/cuda/ttt_inner_*.cu lib/cuda/ttt_inner_rows.cuh lib/cuda/ttt_lr.cuh lib/cuda/mma_bf16.cuh lib/cuda/gelu.cuh \
                   tests/kernels/*.h tests/unit/emu_*.h tests/bf16_bits.h)
	@mkdir -p $(dir $@)
	$(CXX) -O1 -std=c++20 -pthread -Wno-unknown-pragmas -Ilib $< -o $@
check-emu: $(EMU_BIN)
	@set -e; for t in $(EMU_BIN); do echo "== $$t"; out=$$(./$$t) || { echo "$$out"; exit 1; }; echo "$$out" | tail -1; done

check: check-unit check-ref check-cli check-emu
test: check

# The zsh completion is generated from the programs' option tables and committed.
zsh-completion: $(BINS)
	completions/gen-zsh.sh build > completions/zsh/_ttt

man-lint:
	mandoc -Tlint -Wwarning man/*.[157]

# ---- install -----------------------------------------------------------------
install: $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(wildcard man/*.5) $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(MANDIR)/man7
	install -m 644 $(wildcard completions/bash/ttt-*) $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 completions/zsh/_ttt $(DESTDIR)$(ZSHCOMPDIR)

uninstall:
	rm -f $(PROGS:%=$(DESTDIR)$(BINDIR)/ttt-%) $(PROGS:%=$(DESTDIR)$(MANDIR)/man1/ttt-%.1) \
	  $(DESTDIR)$(MANDIR)/man5/ttt-formats.5 $(DESTDIR)$(MANDIR)/man7/ttt.7 \
	  $(PROGS:%=$(DESTDIR)$(BASHCOMPDIR)/ttt-%) $(DESTDIR)$(ZSHCOMPDIR)/_ttt

config:
	@echo "cc:     $(CC)"
	@echo "openmp: $(HAVE_OMP)"
	@echo "blas:   $(HAVE_BLAS)"
	@echo "cuda:   $(HAVE_CUDA)"
	@echo "mpi:    $(HAVE_MPI)"

clean:
	rm -rf build tests/refcheck tests/refcheck-f32

FORCE:
.PHONY: all bench zsh-completion lib test check check-unit check-ref check-cli check-emu man-lint install uninstall config clean FORCE
.SECONDARY:
-include $(shell find build -name '*.d' -not -path 'build/asan/*' 2>/dev/null)

deps:
	bash .ci/deps
.PHONY: deps

# Opt-in fragments owned by their areas (fuzzing, sanitizers, ...).
-include tests/fuzz/fuzz.mk

# The README's first command: the whole job end to end on the King James Bible.
demo: all
	bash examples/demo.sh
.PHONY: demo
