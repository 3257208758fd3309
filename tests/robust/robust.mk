# tests/robust/robust.mk - robustness checks that need a program of their
# own (SPEC 5.1); included by the top-level Makefile.
#
#   make check-handoff        a context handed between threads through the
#                             library alone: natively, under helgrind and
#                             under DRD, with no suppression file
#   make check-tsan-user      a user program built with -fsanitize=thread,
#                             linked against the uninstrumented static
#                             library, run with no suppression file
#   make check-main-exit      values held by the main thread's contexts are
#                             destroyed at process exit (natively and under
#                             memcheck)
#   make check-with-one-line  two CX_WITH on one line build with -Wshadow
#                             -Werror, and run
#   make check-setspecific    pthread_setspecific failing (linked with
#                             --wrap) makes the first call of a thread fail
#                             cleanly, leaking nothing (natively and under
#                             memcheck)
#   make check-robust         all of them (part of make check)
#
# The cmocka suites of the same section (tests/test_exits.c,
# tests/test_enter.c) are ordinary test programs.

ROBUST_DIR     := $(B)/robust
HANDOFF_BIN    := $(ROBUST_DIR)/handoff
MAIN_EXIT_BIN  := $(ROBUST_DIR)/main_exit
WITH_LINE_BIN  := $(ROBUST_DIR)/with_one_line
SETSPEC_BIN    := $(ROBUST_DIR)/setspecific
ROBUST_SCALE   ?= 10
TSAN_CC        ?= clang
# The user program links the ordinary build of the library, never a
# sanitizer build: make check-tsan-user SAN=tsan still uses build/.
TSAN_USER_B    := $(if $(SAN),build,$(B))
TSAN_USER_BIN  := $(TSAN_USER_B)/robust/tsan_user
# No --suppressions: these runs must be clean on their own.
VG_ROBUST      := --error-exitcode=99 --quiet --num-callers=30 --fair-sched=yes

CHECK_PARTS    += check-robust

.PHONY: check-robust check-handoff check-tsan-user check-main-exit check-with-one-line \
        check-setspecific

$(ROBUST_DIR)/%: tests/robust/%.c tests/*.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests $< -o $@ $(LDFLAGS_ALL) $(STATIC_LIB) $(LDLIBS)

$(WITH_LINE_BIN): tests/robust/with_one_line.c $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Wshadow -Werror $< -o $@ $(LDFLAGS_ALL) $(STATIC_LIB) $(LDLIBS)

$(SETSPEC_BIN): tests/robust/setspecific.c tests/*.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests $< -o $@ $(LDFLAGS_ALL) -Wl,--wrap=pthread_setspecific \
	  $(STATIC_LIB) $(LDLIBS)

ROBUST_PARTS   := check-handoff check-tsan-user check-main-exit check-with-one-line \
                  check-setspecific

check-robust:
	@rc=0; for part in $(ROBUST_PARTS); do \
	  echo "== $$part"; $(MAKE) --no-print-directory $$part || rc=1; done; \
	if [ $$rc = 0 ]; then echo "check-robust: all parts passed"; \
	else echo "check-robust: FAILED"; fi; exit $$rc

# Each run happens even if an earlier one failed; the part fails if any did.
check-handoff: lib $(HANDOFF_BIN)
	@rc=0; \
	echo "== handoff: native"; CX_TEST_SCALE=$(CX_TEST_SCALE) $(HANDOFF_BIN) || rc=1; \
	echo "== handoff: helgrind"; CX_TEST_SCALE=$(ROBUST_SCALE) \
	  valgrind --tool=helgrind $(VG_ROBUST) $(HANDOFF_BIN) || rc=1; \
	echo "== handoff: drd"; CX_TEST_SCALE=$(ROBUST_SCALE) \
	  valgrind --tool=drd $(VG_ROBUST) $(HANDOFF_BIN) || rc=1; \
	exit $$rc

check-tsan-user:
	@$(MAKE) --no-print-directory B=$(TSAN_USER_B) SAN= lib
	@mkdir -p $(dir $(TSAN_USER_BIN))
	$(TSAN_CC) -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -fsanitize=thread -fno-omit-frame-pointer \
	  -Iinclude -Itests tests/robust/tsan_user.c -o $(TSAN_USER_BIN) \
	  $(TSAN_USER_B)/libcxvars.a $(LDLIBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" CX_TEST_SCALE=$(CX_TEST_SCALE) \
	  $(TSAN_USER_BIN)

check-main-exit: lib $(MAIN_EXIT_BIN)
	@rc=0; \
	echo "== main_exit: native"; $(MAIN_EXIT_BIN) || rc=1; \
	echo "== main_exit: memcheck"; $(VG_MEMCHECK) $(MAIN_EXIT_BIN) || rc=1; \
	exit $$rc

check-with-one-line: lib $(WITH_LINE_BIN)
	$(WITH_LINE_BIN)

check-setspecific: lib $(SETSPEC_BIN)
	@rc=0; \
	echo "== setspecific: native"; $(SETSPEC_BIN) || rc=1; \
	echo "== setspecific: memcheck"; $(VG_MEMCHECK) $(SETSPEC_BIN) || rc=1; \
	exit $$rc
