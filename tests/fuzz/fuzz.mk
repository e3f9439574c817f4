# tests/fuzz/fuzz.mk - fuzzing and sanitizer targets (included by the Makefile).
#
#   make fuzz-build     libFuzzer targets in build/fuzz/ (clang, ASan + UBSan)
#   make fuzz-seeds     seed corpora from real files (tests/fuzz/mkseeds.sh)
#   make fuzz-smoke     replay tests/regress/, then fuzz each target FUZZ_SMOKE_TIME s
#   make fuzz           the same for FUZZ_TIME s per target (new inputs kept in build/fuzz/corpus/)
#   make check-asan     the whole test suite against -fsanitize=address,undefined builds
#   make check-valgrind tests/valgrind.sh (memcheck over an end-to-end pipeline)
#
# The targets run one at a time: the machine is shared.

FUZZ_CC      ?= clang
FUZZ_SMOKE_TIME ?= 15
FUZZ_TIME    ?= 180
# Extra libFuzzer flags; CI passes a fixed -seed and a -runs bound so that its
# smoke run walks the same inputs every time.
FUZZ_EXTRA   ?=
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 $(ARCH) -std=gnu11 $(FUZZ_SAN) -Ilib -Icmd -Ibuild -Itests/fuzz
FUZZ_LDLIBS  := -lz -lxxhash -lpcre2-8 -lm -lpthread
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=build/fuzz/%)
FUZZ_LIBOBJ  := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
# libFuzzer flags shared by every run: a slow or huge input is a finding too.
FUZZ_RUNFLAGS := -rss_limit_mb=2048 -timeout=20 -print_final_stats=1

build/fuzz/obj/%.o: %.c build/config.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/libttt-fuzz.a: $(FUZZ_LIBOBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# fuzz_cli_num tests cmd/cli.c itself: its exit() is wrapped (see the target).
build/fuzz/fuzz_cli_num: build/fuzz/obj/tests/fuzz/fuzz_cli_num.o build/fuzz/obj/cmd/cli.o build/fuzz/libttt-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Wl,--wrap=exit -o $@ $^ $(FUZZ_LDLIBS)

build/fuzz/fuzz_%: build/fuzz/obj/tests/fuzz/fuzz_%.o build/fuzz/libttt-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LDLIBS)

build/fuzz/obj/tests/fuzz/%.o: tests/fuzz/fuzz_common.h

fuzz-build: $(FUZZ_BINS)

# Seeds come from whatever programs build/ holds (built first if missing), so
# a half-edited file elsewhere in the tree does not block fuzzing.
build/fuzz/seeds/.done: tests/fuzz/mkseeds.sh
	@for b in $(BINS); do [ -x $$b ] || { $(MAKE) $(BINS) && break; }; done
	tests/fuzz/mkseeds.sh build build/fuzz/seeds
	@touch $@
fuzz-seeds: build/fuzz/seeds/.done

# Each target: replay every regression file (each must run clean), then fuzz
# over the seeds for $(1) seconds. New inputs go to build/fuzz/corpus/NAME.
# Every target runs; the failures are listed at the end (exit 1).
define fuzz_run
	@fail=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t build/fuzz/seeds/$$t tests/fuzz/seeds/$$t tests/regress/$$t build/fuzz/crashes/$$t; \
	  if ls tests/regress/$$t/* >/dev/null 2>&1; then \
	    echo "== $$t: replaying tests/regress/$$t"; \
	    build/fuzz/$$t $(FUZZ_RUNFLAGS) tests/regress/$$t/* 2>build/fuzz/$$t.replay.log \
	      || { tail -40 build/fuzz/$$t.replay.log; echo "fuzz: $$t: a regression input fails"; fail="$$fail $$t"; continue; }; \
	  fi; \
	  echo "== $$t: fuzzing $(1) s"; \
	  build/fuzz/$$t $(FUZZ_RUNFLAGS) $(FUZZ_EXTRA) -max_total_time=$(1) -artifact_prefix=build/fuzz/crashes/$$t/ \
	    build/fuzz/corpus/$$t build/fuzz/seeds/$$t tests/fuzz/seeds/$$t tests/regress/$$t \
	    >build/fuzz/$$t.log 2>&1 \
	    || { grep -aE 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x.* in [a-z_]+ /' build/fuzz/$$t.log | head -20; \
	         echo "fuzz: $$t: FAILED, input kept in build/fuzz/crashes/$$t/"; fail="$$fail $$t"; continue; }; \
	  grep -aE '[[:space:]]DONE ' build/fuzz/$$t.log | tail -1; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: failed:$$fail"; exit 1; fi; echo "fuzz: all targets clean"
endef

fuzz-smoke: fuzz-build fuzz-seeds
	$(call fuzz_run,$(FUZZ_SMOKE_TIME))

fuzz: fuzz-build fuzz-seeds
	$(call fuzz_run,$(FUZZ_TIME))

# ---- sanitizer build of everything ------------------------------------------
# The Makefile hard-codes build/ as its build directory, so check-asan.sh
# copies the tree into build/asan/ and builds and tests it there.
check-asan:
	tests/fuzz/check-asan.sh $(REFVECTORS)

check-valgrind: all
	tests/valgrind.sh build

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-seeds check-asan check-valgrind
