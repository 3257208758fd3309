# examples.mk - the example programs, `make demo`, and the install test.
# Included by the top-level Makefile (B, CC, CFLAGS_ALL, LDFLAGS_ALL,
# SHARED_LIB, STATIC_LIB, LDLIBS, PREFIX, VERSION come from there).
#
#   make examples        build every examples/*.c against $(B)/libcxvars.so
#   make demo            install missing packages, build, run the echo server
#   make check-examples  run every example; fails if one exits non-zero
#   make check-install   install into a temporary DESTDIR, build programs
#                        against it through pkg-config and CMake (shared and
#                        static), look up a man page, uninstall, and check
#                        nothing is left behind (tools/check-install.sh)

EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLE_BINS := $(patsubst examples/%.c,$(B)/examples/%,$(EXAMPLE_SRCS))
# Each example must finish well within this (the echo server also bounds
# itself with alarm()).
EXAMPLE_TIMEOUT ?= 60

.PHONY: examples demo check-examples check-install

# The examples also run in every test/valgrind/sanitizer pass of make check:
# they must be leak-free and race-free like the test programs.
EXTRA_TEST_BINS += $(EXAMPLE_BINS)

examples: $(EXAMPLE_BINS)

# Linked like a user program: public headers only, the shared library, and
# an rpath so that the binaries run from the build tree. EXAMPLE_CFLAGS and
# EXAMPLE_LIBS: per-example extras, set as target-specific variables by the
# fragment that needs them (foreign.mk: libuv, GLib).
$(B)/examples/%: examples/%.c include/cxvars.h include/cxpool.h $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EXAMPLE_CFLAGS) $< -o $@ $(LDFLAGS_ALL) -L$(B) -Wl,-rpath,$(abspath $(B)) -lcxvars $(EXAMPLE_LIBS) -lpthread

demo:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory lib $(B)/examples/echo_server $(B)/examples/deadline_demo \
	  $(B)/examples/pool_inspect
	@echo "#### running $(B)/examples/echo_server"
	@$(B)/examples/echo_server
	@echo "#### running $(B)/examples/deadline_demo"
	@$(B)/examples/deadline_demo
	@echo "#### running $(B)/examples/pool_inspect"
	@$(B)/examples/pool_inspect

# The README's first C block must be examples/readme_example.c (less its
# opening comment), so the example people copy is the one that is tested.
check-examples: $(EXAMPLE_BINS)
	@awk '/^```c$$/{f=1;next} f&&/^```$$/{exit} f' README.md > $(B)/examples/readme_block.c; \
	sed '1,/\*\//d' examples/readme_example.c | diff -u - $(B)/examples/readme_block.c \
	  || { echo "== README.md's example differs from examples/readme_example.c"; exit 1; }
	@set -e; n=0; for x in $(EXAMPLE_BINS); do \
	  echo "== example $$x"; \
	  timeout $(EXAMPLE_TIMEOUT) $$x > $$x.out 2>&1 || { rc=$$?; cat $$x.out; \
	    echo "== example $$x FAILED (exit $$rc)"; exit 1; }; \
	  tail -n 1 $$x.out; n=$$((n+1)); \
	done; echo "== examples: $$n passed, 0 failed"

# ------------------------------------------------------------ install test
# A staged install into $(INSTALL_TEST)/root, used the way downstream builds
# use it: pkg-config (shared and static), the CMake package
# (tests/cmake-consumer, shared and static), man pages; then uninstall, and
# nothing may be left behind. See tools/check-install.sh.
INSTALL_TEST := $(abspath $(B))/install-test

check-install: lib
	@MAKE="$(MAKE)" CC="$(CC)" VERSION=$(VERSION) SOVERSION=$(SOVERSION) T=$(INSTALL_TEST) \
	  sh tools/check-install.sh

CHECK_PARTS += check-examples check-install
