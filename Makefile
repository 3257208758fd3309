# cxvars - see README.md; `make help` lists the targets.
#
# `make` (all, lib) builds the library and needs nothing but a C compiler
# and libck: it never installs packages. `make deps` installs the missing
# Debian packages (tools/deps.sh); test, check, bench and demo run it
# first.
#
# Variables: B (build dir), SAN (asan|tsan: a sanitizer build in its own B),
# PREFIX/DESTDIR and the *DIR below (install), CX_TEST_SCALE (percent of
# the default stress sizes; valgrind runs use VG_SCALE).

# The version is the one include/cxvars.h declares (CX_VERSION_MAJOR,
# _MINOR, _PATCH): the library's cx_version(), cxvars.pc and the CMake
# package all say the same. SOVERSION changes only when the ABI breaks.
VERSION     := $(shell awk '$$1 ~ /^.define$$/ && $$2 ~ /^CX_VERSION_(MAJOR|MINOR|PATCH)$$/ \
                 { v = v s $$3; s = "." } END { print v }' include/cxvars.h)
ifneq ($(words $(subst ., ,$(VERSION))),3)
$(error cannot read CX_VERSION_MAJOR/MINOR/PATCH from include/cxvars.h (got '$(VERSION)'))
endif
SOVERSION   := 0
B           ?= build
SAN         ?=
PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR    ?= $(LIBDIR)/cmake/cxvars
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/cxvars
DATADIR     ?= $(PREFIX)/share/cxvars
CX_TEST_SCALE ?= 100
VG_SCALE    ?= 3

CC          ?= cc
ifeq ($(CC),cc)
CC          := gcc
endif
OPT         ?= -O2
WARN        := -Wall -Wextra -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -Isrc
# -fexceptions: a C++ exception thrown by a callback unwinds through
# cx_context_run and the library's cleanup handlers.
LIB_CFLAGS  := -fPIC -fvisibility=hidden -fno-semantic-interposition -fexceptions
LDLIBS      := -lck -lpthread

# Sanitizer builds are checked builds too: CX__ASSERT invariants (src/check.h)
# abort on violation.
ifeq ($(SAN),asan)
# clang's runtime: gcc 12's libasan reports a false stack-buffer-overflow in
# its own sigaltstack call when a thread is cancelled and unwinds through a
# cleanup frame (cx_context_run, the thread trampoline).
CC          := clang
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
               -DCX_CHECKED
endif
ifeq ($(SAN),tsan)
CC          := clang
SAN_FLAGS   := -fsanitize=thread -fno-omit-frame-pointer -DCX_CHECKED
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
# The exported symbols and their version nodes (see the file's comment;
# make check-symbols compares it with the library).
SYMBOL_MAP  := src/cxvars.map

# cmocka suites: tests/test_*.c, one program each, linked statically so
# they can reach test-only internals (hash override, map depth).
TEST_SRCS   := $(wildcard tests/test_*.c)
TEST_BINS   := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
# Programs that fragments add to every test/valgrind/sanitizer run.
EXTRA_TEST_BINS :=
# What make check runs, in order; each fragment appends its own check-*.
CHECK_PARTS := test check-memcheck check-helgrind check-drd check-asan check-asan-cached check-tsan

.PHONY: all lib test check deps deps-check clean install uninstall help \
        check-memcheck check-helgrind check-drd check-asan check-asan-cached check-tsan \
        run-tests run-valgrind
.DEFAULT_GOAL := all

all: lib
lib: $(STATIC_LIB) $(SHARED_LIB) $(PC_FILE)

$(B)/obj/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(SHARED_REAL): $(LIB_OBJS) $(SYMBOL_MAP)
	$(CC) -shared -Wl,-soname,$(SHARED_SONAME) -Wl,--version-script=$(SYMBOL_MAP) \
	  $(NO_UNDEF) $(LDFLAGS_ALL) -o $@ $(LIB_OBJS) $(LDLIBS)

$(SHARED_LIB): $(SHARED_REAL)
	ln -sf libcxvars.so.$(VERSION) $(B)/$(SHARED_SONAME)
	ln -sf libcxvars.so.$(VERSION) $@

# The .pc is rewritten whenever its text would change (PREFIX, LIBDIR or
# INCLUDEDIR given to a later make, e.g. make install PREFIX=/opt/cx), and
# its paths are relative to ${prefix} so that pkg-config's
# --define-variable=prefix=... relocates it. ck is named in Libs.private,
# not Requires.private: ck.pc's Cflags (-D__x86_64__ ...) are ck's
# business, and would otherwise end up in every user's --cflags.
PC_LIBDIR     := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
$(PC_FILE): FORCE
	@mkdir -p $(@D)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(PC_LIBDIR)' 'includedir=$(PC_INCLUDEDIR)' '' \
	  'Name: cxvars' \
	  'Description: Python contextvars for C and POSIX threads, with a context-propagating thread pool' \
	  'Version: $(VERSION)' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -lcxvars' \
	  'Libs.private: -lck -lpthread' > $@.tmp
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

test: deps
	@$(MAKE) --no-print-directory lib
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
# The caches (slabs, banks, a thread's run context) are off in the
# sanitizer builds above, so that ASan sees every block's own life; this
# build turns them on (CX_TEST_CACHES, src/alloc.h) so that ASan and
# LeakSanitizer check the caches' own code.
check-asan-cached:
	@$(MAKE) --no-print-directory B=build/asan-cached SAN=asan CFLAGS="$(CFLAGS) -DCX_TEST_CACHES" lib
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) --no-print-directory B=build/asan-cached SAN=asan CFLAGS="$(CFLAGS) -DCX_TEST_CACHES" \
	  run-tests RUN_LABEL=asan+ubsan-cached
check-tsan:
	@$(MAKE) --no-print-directory B=build/tsan SAN=tsan lib
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  $(MAKE) --no-print-directory B=build/tsan SAN=tsan run-tests RUN_LABEL=tsan CX_TEST_SCALE=25

check: deps
	@set -e; for part in $(CHECK_PARTS); do \
	  echo "#### make $$part"; $(MAKE) --no-print-directory $$part; done; \
	echo "#### make check: all parts passed ($(CHECK_PARTS))"

# ---------------------------------------------------------------- deps
# Installs the missing Debian packages (a no-op when all are present).
# Building the library alone never runs it; test, check and bench do
# (bench.mk and demo also ask for what they use themselves).
deps:
	@sh tools/deps.sh
bench: deps
# Older name of deps.
deps-check: deps

# ---------------------------------------------------------------- install
# What make install puts under $(DESTDIR)$(PREFIX) (default /usr/local):
#   include/          the public headers
#   lib/              libcxvars.a, libcxvars.so.$(VERSION) + soname and dev links
#   lib/pkgconfig/    cxvars.pc
#   lib/cmake/cxvars/ cxvarsConfig.cmake, cxvarsConfigVersion.cmake
#                     (find_package(cxvars) -> the target cxvars::cxvars)
#   share/man/man3/   cxvars(3), cxpool(3), a page or a link per function
#   share/doc/cxvars/ README.md, LICENSE, CHANGELOG.md, docs/*.md
# make uninstall removes exactly these (and the directories that are
# cxvars' own, if empty); make check-install checks both.
PUBLIC_HDRS := $(wildcard include/*.h include/*.hpp)
MAN_PAGES   := $(wildcard man/*.3)
DOC_FILES   := README.md LICENSE CHANGELOG.md
DOC_DOCS    := $(wildcard docs/*.md)
CMAKE_FILES := $(B)/cmake/cxvarsConfig.cmake $(B)/cmake/cxvarsConfigVersion.cmake

# The CMake package finds the install from its own location: the prefix is
# CMAKEDIR's parent that many levels up, and the library and header
# directories are relative to it (absolute only if configured outside
# PREFIX). So a moved or DESTDIR-staged tree works as it is.
cx_empty :=
cx_space := $(cx_empty) $(cx_empty)
cx_rel    = $(if $(filter $(PREFIX)/%,$(1)),$(patsubst $(PREFIX)/%,%,$(1)),$(1))
CM_PREFIX := $(if $(filter $(PREFIX)/%,$(CMAKEDIR)),$(subst $(cx_space),/,$(foreach d,$(subst /, ,$(call cx_rel,$(CMAKEDIR))),..)),$(PREFIX))
CM_SUBST  := -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOVERSION@|$(SOVERSION)|g' \
             -e 's|@VERSION_MAJOR@|$(word 1,$(subst ., ,$(VERSION)))|g' \
             -e 's|@PREFIX@|$(CM_PREFIX)|g' -e 's|@LIBDIR@|$(call cx_rel,$(LIBDIR))|g' \
             -e 's|@INCLUDEDIR@|$(call cx_rel,$(INCLUDEDIR))|g'
$(B)/cmake/%.cmake: cmake/%.cmake.in FORCE
	@mkdir -p $(@D)
	@ptr=$$(echo __SIZEOF_POINTER__ | $(CC) $(CFLAGS_ALL) -E -P -x c - | tr -d ' '); \
	sed $(CM_SUBST) -e "s|@SIZEOF_VOID_P@|$$ptr|g" $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

install: lib $(CMAKE_FILES)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(DOCDIR)/docs
	install -m 644 $(PUBLIC_HDRS) $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf libcxvars.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SHARED_SONAME)
	ln -sf libcxvars.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcxvars.so
	install -m 644 $(PC_FILE) $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 $(CMAKE_FILES) $(DESTDIR)$(CMAKEDIR)/
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man3/
	sh man/pages.sh links $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)/
	install -m 644 $(DOC_DOCS) $(DESTDIR)$(DOCDIR)/docs/
	install -d $(DESTDIR)$(DATADIR)
	install -m 644 tests/tsan.supp $(DESTDIR)$(DATADIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(PUBLIC_HDRS))) \
	  $(DESTDIR)$(LIBDIR)/libcxvars.a $(DESTDIR)$(LIBDIR)/libcxvars.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(SHARED_SONAME) $(DESTDIR)$(LIBDIR)/libcxvars.so \
	  $(DESTDIR)$(PKGCONFIGDIR)/cxvars.pc \
	  $(addprefix $(DESTDIR)$(CMAKEDIR)/,$(notdir $(CMAKE_FILES))) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN_PAGES))) \
	  $(addprefix $(DESTDIR)$(DOCDIR)/,$(DOC_FILES)) \
	  $(addprefix $(DESTDIR)$(DOCDIR)/docs/,$(notdir $(DOC_DOCS))) \
	  $(DESTDIR)$(DATADIR)/tsan.supp
	sh man/pages.sh names | while read -r name page; do \
	  rm -f "$(DESTDIR)$(MANDIR)/man3/$$name.3"; done
	rmdir $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR) 2>/dev/null || true

# ---------------------------------------------------------------- help
help:
	@printf '%s\n' \
	  'make                build the library ($(B)/libcxvars.a, .so, cxvars.pc); installs nothing' \
	  'make lib            the same' \
	  'make deps           install the missing Debian packages (tools/deps.sh)' \
	  'make test           deps, then the test programs (suites, stress, examples, fuzz replay)' \
	  'make check          deps, then every check-* part listed below, in order' \
	  'make check-memcheck the test programs under valgrind memcheck (no leak allowed)' \
	  'make check-helgrind the test programs under helgrind' \
	  'make check-drd      the test programs under DRD' \
	  'make check-asan     the test programs built with ASan+UBSan (in build/asan)' \
	  'make check-asan-cached  the same with the library'"'"'s block caches on (build/asan-cached)' \
	  'make check-tsan     the test programs built with TSan (in build/tsan)' \
	  'make check-oom      out-of-memory walk, natively and under memcheck' \
	  'make check-fuzz     differential fuzzer: corpus replay, then FUZZ_SECONDS of fuzzing' \
	  'make check-examples run every example program' \
	  'make check-install  staged install; build with pkg-config and CMake; man; uninstall' \
	  'make check-symbols  the library exports exactly the symbols of $(SYMBOL_MAP)' \
	  'make check-man      every public function has a man page; pages render cleanly' \
	  'make check-cxx      the C++ tests (cxvars.hpp), with g++ and clang++' \
	  'make check-robust   user-style programs: thread ends, handoffs under helgrind/DRD, TSan user, exit' \
	  'make examples       build the example programs' \
	  'make demo           deps, then run the echo server, deadline and pool-inspection demos' \
	  'make bench          deps, then run the benchmarks' \
	  'make bench-plot     draw the benchmark curves into $(B)/bench.png' \
	  'make bench-icount   instructions per operation through callgrind (set+reset, copy, run, get)' \
	  'make fuzz           fuzz for FUZZ_LONG_SECONDS' \
	  'make soak           the stress program at CX_TEST_SCALE=SOAK_SCALE' \
	  'make install        install under $$DESTDIR$(PREFIX) (PREFIX=..., DESTDIR=...)' \
	  'make uninstall      remove what install put there' \
	  'make clean          remove build/' \
	  'make help           this list' \
	  '' \
	  'make check runs: $(CHECK_PARTS)' \
	  'Variables: PREFIX LIBDIR INCLUDEDIR PKGCONFIGDIR CMAKEDIR MANDIR DOCDIR DATADIR DESTDIR,' \
	  '  B (build dir), SAN=asan|tsan, CC, CFLAGS, LDFLAGS, CX_TEST_SCALE (percent).' \
	  'cxvars $(VERSION), soname libcxvars.so.$(SOVERSION).'

clean:
	rm -rf build
