# tests/verify.mk - the verification layer: stress/soak, out-of-memory walk,
# differential fuzzer (included by the top-level Makefile; works with any B
# and SAN).
#
#   make check-oom      OOM walk natively and under memcheck
#   make check-fuzz     replay the seed corpus; with clang's libFuzzer also
#                       fuzz for FUZZ_SECONDS (default 60)
#   make fuzz           the same for FUZZ_LONG_SECONDS (default 3600)
#   make fuzz-seeds     regenerate tests/fuzz/corpus with gen_corpus
#   make soak           tests/stress at CX_TEST_SCALE=$(SOAK_SCALE)
#
# tests/stress and the corpus replay also run in every test, valgrind and
# sanitizer run through EXTRA_TEST_BINS.

FUZZ_SECONDS      ?= 60
FUZZ_LONG_SECONDS ?= 3600
FUZZ_CC           ?= clang
FUZZ_RANDOM       ?= 20000
SOAK_SCALE        ?= 1000

VERIFY_FUZZ_DIR := $(B)/fuzz
FUZZ_REPLAY     := $(VERIFY_FUZZ_DIR)/replay
FUZZ_LIBFUZZER  := $(VERIFY_FUZZ_DIR)/fuzz_ops
FUZZ_GEN        := $(VERIFY_FUZZ_DIR)/gen_corpus
FUZZ_CORPUS     := tests/fuzz/corpus
OOM_BIN         := $(B)/tests/oom
STRESS_BIN      := $(B)/tests/stress

EXTRA_TEST_BINS += $(if $(wildcard tests/stress.c),$(STRESS_BIN)) $(FUZZ_REPLAY)
CHECK_PARTS     += check-oom check-fuzz

.PHONY: check-oom check-fuzz fuzz fuzz-seeds soak

# tests/stress.c and tests/oom.c are built by the generic $(B)/tests/% rule.

# The fuzz target as a plain program: built with $(CC) and $(CFLAGS_ALL), so
# also with the sanitizers of a SAN build. Both fuzzer builds define
# CX_CHECKED (the libFuzzer one compiles the core in, so its CX__ASSERTs are
# live too).
$(FUZZ_REPLAY): tests/fuzz/fuzz_ops.c tests/fuzz/replay.c tests/fuzz/fuzz_ops.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -DCX_CHECKED -Itests/fuzz tests/fuzz/fuzz_ops.c tests/fuzz/replay.c -o $@ \
	  $(LDFLAGS_ALL) $(STATIC_LIB) $(LDLIBS)

# libFuzzer build: the core sources compiled in, so they carry the coverage
# instrumentation too (ASan + UBSan on).
FUZZ_LF_FLAGS := -std=c11 -D_GNU_SOURCE -DCX_CHECKED -g -O1 -Iinclude -Isrc -Itests/fuzz \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# (pool/ too: the core calls into strands, pool/strand.c.)
$(FUZZ_LIBFUZZER): tests/fuzz/fuzz_ops.c tests/fuzz/fuzz_ops.h $(wildcard src/*.c src/*.h pool/*.c pool/*.h include/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_LF_FLAGS) $(wildcard src/*.c pool/*.c) tests/fuzz/fuzz_ops.c -o $@ $(LDLIBS)

$(FUZZ_GEN): tests/fuzz/gen_corpus.c tests/fuzz/fuzz_ops.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Werror -g tests/fuzz/gen_corpus.c -o $@

# Rewrites the generated seeds (the found_* files are inputs libFuzzer found
# that add coverage, kept as they are).
fuzz-seeds: $(FUZZ_GEN)
	@mkdir -p $(FUZZ_CORPUS)
	$(FUZZ_GEN) $(FUZZ_CORPUS)
	@echo "fuzz-seeds: $$(ls $(FUZZ_CORPUS) | wc -l) files in $(FUZZ_CORPUS)"

# Both runs happen even if the first one reports violations; valgrind's own
# errors (leaks, invalid accesses) make it exit with 99.
check-oom: lib $(OOM_BIN)
	@rc=0; echo "== oom: native"; $(OOM_BIN) || rc=1; \
	echo "== oom: memcheck"; $(VG_MEMCHECK) $(OOM_BIN); vg=$$?; \
	if [ $$vg = 99 ]; then echo "oom: memcheck reported errors"; rc=1; \
	else echo "oom: memcheck: 0 errors, 0 leaks"; [ $$vg = 0 ] || rc=1; fi; \
	exit $$rc

# Runs libFuzzer for $(1) seconds if $(FUZZ_CC) can build it, else the
# replay binary's pseudo-random mode. Prints executions and divergences.
define verify_fuzz_run
	@echo "== fuzz: replay of $(FUZZ_CORPUS)"
	@$(FUZZ_REPLAY) $(FUZZ_CORPUS)
	@set -e; probe=$(VERIFY_FUZZ_DIR)/probe; mkdir -p $(VERIFY_FUZZ_DIR); \
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' > $$probe.c; \
	if $(FUZZ_CC) -fsanitize=fuzzer $$probe.c -o $$probe >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(FUZZ_LIBFUZZER); \
	  work=$(VERIFY_FUZZ_DIR)/work; log=$(VERIFY_FUZZ_DIR)/fuzz.log; mkdir -p $$work; \
	  echo "== fuzz: libFuzzer for $(1) s (log in $$log)"; \
	  if $(FUZZ_LIBFUZZER) -max_total_time=$(1) -print_final_stats=1 -max_len=1024 \
	       -timeout=30 -artifact_prefix=$(VERIFY_FUZZ_DIR)/ $$work $(FUZZ_CORPUS) > $$log 2>&1; then \
	    execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	    echo "fuzz: $$execs executions in $(1) s, 0 divergences ($$(ls $$work | wc -l) inputs in $$work)"; \
	  else \
	    grep -E 'DIVERGENCE|ERROR|SUMMARY|Test unit written' $$log | head -20; \
	    echo "fuzz: 1 divergence or crash (see $$log; reproduce with $(FUZZ_REPLAY) <artifact>)"; exit 1; \
	  fi; \
	else \
	  echo "== fuzz: $(FUZZ_CC) -fsanitize=fuzzer unavailable: $(FUZZ_RANDOM) pseudo-random inputs instead"; \
	  $(FUZZ_REPLAY) --random $(FUZZ_RANDOM); \
	fi
endef

check-fuzz: lib $(FUZZ_REPLAY)
	$(call verify_fuzz_run,$(FUZZ_SECONDS))

fuzz: lib $(FUZZ_REPLAY)
	$(call verify_fuzz_run,$(FUZZ_LONG_SECONDS))

soak: lib $(STRESS_BIN)
	CX_TEST_SCALE=$(SOAK_SCALE) $(STRESS_BIN)
