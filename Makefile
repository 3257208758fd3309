# cxvars - see README.md. Targets: all test check bench demo install
# uninstall deps clean (and the check-* parts of check).
#
# Variables: B (build dir), SAN (asan|tsan: a sanitizer build in its own B),
# PREFIX/DESTDIR (install), CX_TEST_SCALE (percent of the default stress
# sizes; valgrind runs use VG_SCALE).

VERSION     := 0.1.0
SOVERSION   := 0
B           ?= build
SAN         ?=
PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CX_TEST_SCALE ?= 100
VG_SCALE    ?= 3

CC          ?= cc
ifeq ($(CC),cc)
CC          := gcc
endif
OPT         ?= -O2
WARN        := -Wall -Wextra -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -Isrc
LIB_CFLAGS  := -fexceptions -fPIC -fvisibility=hidden -fno-semantic-interposition
LDLIBS      := -lck -lpthread

ifeq ($(SAN),asan)
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
ifeq ($(SAN),tsan)
CC          := clang
SAN_FLAGS   := -fsanitize=thread -fno-omit-frame-pointer
endif
CFLAGS_ALL  := $(BASE_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
# Sanitizer runtimes are linked into programs, not shared libraries.
NO_UNDEF    := $(if $(SAN),,-Wl,--no-undefined)
LDFLAGS_ALL := $(SAN_FLAGS) $(LDFLAGS)

LIB_SRCS    := $(wildcard src/*.c) $(wildcard pool/*.c)
LIB_OBJS    := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRCS))
LIB_HDRS    := $(wildcard include/*.h src/*.h pool/*.h)
STATIC_LIB  := $(B)/libcxvars.a
SHARED_REAL := $(B)/libcxvars.so.$(VERSION)
SHARED_SONAME := libcxvars.so.$(SOVERSION)
SHARED_LIB  := $(B)/libcxvars.so
PC_FILE     := $(B)/cxvars.pc

# cmocka suites: tests/test_*.c, one program each, linked statically so
# they can reach test-only internals (hash override, map depth).
TEST_SRCS   := $(wildcard tests/test_*.c)
TEST_BINS   := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
# Programs that fragments add to every test/valgrind/sanitizer run.
EXTRA_TEST_BINS :=
# What make check runs, in order; each fragment appends its own check-*.
CHECK_PARTS := test check-memcheck check-helgrind check-drd check-asan check-tsan

.PHONY: all lib test check deps deps-check clean install uninstall \
        check-memcheck check-helgrind check-drd check-asan check-tsan \
        run-tests run-valgrind
.DEFAULT_GOAL := all

all: lib
lib: $(STATIC_LIB) $(SHARED_LIB) $(PC_FILE)

$(B)/obj/%.o: %.c $(LIB_HDRS) | deps-check
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(SHARED_REAL): $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,$(SHARED_SONAME) $(NO_UNDEF) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS)

$(SHARED_LIB): $(SHARED_REAL)
	ln -sf libcxvars.so.$(VERSION) $(B)/$(SHARED_SONAME)
	ln -sf libcxvars.so.$(VERSION) $@

# The .pc is rewritten whenever its text would change (PREFIX, LIBDIR or
# INCLUDEDIR given to a later make, e.g. make install PREFIX=/opt/cx), and
# its paths are relative to ${prefix} so that pkg-config's
# --define-variable=prefix=... relocates it.
PC_LIBDIR     := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
$(PC_FILE): FORCE
	@mkdir -p $(@D)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(PC_LIBDIR)' 'includedir=$(PC_INCLUDEDIR)' '' \
	  'Name: cxvars' \
	  'Description: Python contextvars for C and POSIX threads, with a context-propagating thread pool' \
	  'Version: $(VERSION)' \
	  'Requires.private: ck' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -lcxvars' \
	  'Libs.private: -lpthread' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

.PHONY: FORCE
FORCE:

$(B)/tests/%: tests/%.c tests/*.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests $< -o $@ $(LDFLAGS_ALL) $(STATIC_LIB) -lcmocka $(LDLIBS)

# ---------------------------------------------------------------- fragments
# Each part of the project keeps its own rules beside its sources.
-include $(wildcard tests/*.mk tests/*/*.mk bench/*.mk examples/*.mk docs/*.mk)

ALL_TEST_BINS = $(TEST_BINS) $(EXTRA_TEST_BINS)

# ---------------------------------------------------------------- running
# run-tests runs every test program through $(RUNNER) (empty: natively).
run-tests: $(ALL_TEST_BINS)
	@set -e; n=0; for t in $(ALL_TEST_BINS); do \
	  echo "== $(RUN_LABEL) $$t"; \
	  CX_TEST_SCALE=$(CX_TEST_SCALE) $(RUNNER) $$t; n=$$((n+1)); \
	done; echo "== $(RUN_LABEL): $$n programs passed"

test: lib
	@$(MAKE) --no-print-directory run-tests RUN_LABEL=test

VG_COMMON := --error-exitcode=99 --quiet --num-callers=30 --fair-sched=yes
VG_MEMCHECK := valgrind --tool=memcheck $(VG_COMMON) --leak-check=full \
  --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
VG_HELGRIND := valgrind --tool=helgrind $(VG_COMMON) --suppressions=tests/valgrind.supp
VG_DRD      := valgrind --tool=drd $(VG_COMMON) --suppressions=tests/valgrind.supp

check-memcheck: lib
	@$(MAKE) --no-print-directory run-tests RUN_LABEL=memcheck RUNNER="$(VG_MEMCHECK)" CX_TEST_SCALE=$(VG_SCALE)
check-helgrind: lib
	@$(MAKE) --no-print-directory run-tests RUN_LABEL=helgrind RUNNER="$(VG_HELGRIND)" CX_TEST_SCALE=$(VG_SCALE)
check-drd: lib
	@$(MAKE) --no-print-directory run-tests RUN_LABEL=drd RUNNER="$(VG_DRD)" CX_TEST_SCALE=$(VG_SCALE)

check-asan:
	@$(MAKE) --no-print-directory B=build/asan SAN=asan lib
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) --no-print-directory B=build/asan SAN=asan run-tests RUN_LABEL=asan+ubsan
check-tsan:
	@$(MAKE) --no-print-directory B=build/tsan SAN=tsan lib
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  $(MAKE) --no-print-directory B=build/tsan SAN=tsan run-tests RUN_LABEL=tsan CX_TEST_SCALE=25

check: deps-check
	@set -e; for part in $(CHECK_PARTS); do \
	  echo "#### make $$part"; $(MAKE) --no-print-directory $$part; done; \
	echo "#### make check: all parts passed ($(CHECK_PARTS))"

# ---------------------------------------------------------------- deps
deps:
	@sh tools/deps.sh
# Installs missing packages before a build (a no-op when all are present).
deps-check:
	@sh tools/deps.sh

# ---------------------------------------------------------------- install
install: lib
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/cxvars.h include/cxpool.h include/cxvars.hpp $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf libcxvars.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SHARED_SONAME)
	ln -sf libcxvars.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcxvars.so
	install -m 644 $(PC_FILE) $(DESTDIR)$(PKGCONFIGDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cxvars.h $(DESTDIR)$(INCLUDEDIR)/cxpool.h $(DESTDIR)$(INCLUDEDIR)/cxvars.hpp \
	  $(DESTDIR)$(LIBDIR)/libcxvars.a $(DESTDIR)$(LIBDIR)/libcxvars.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(SHARED_SONAME) $(DESTDIR)$(LIBDIR)/libcxvars.so \
	  $(DESTDIR)$(PKGCONFIGDIR)/cxvars.pc

clean:
	rm -rf build
