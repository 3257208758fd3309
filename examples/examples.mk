# examples.mk - the example programs, `make demo`, and the install test.
# Included by the top-level Makefile (B, CC, CFLAGS_ALL, LDFLAGS_ALL,
# SHARED_LIB, STATIC_LIB, LDLIBS, PREFIX, VERSION come from there).
#
#   make examples        build every examples/*.c against $(B)/libcxvars.so
#   make demo            install missing packages, build, run the echo server
#   make check-examples  run every example; fails if one exits non-zero
#   make check-install   install into a temporary DESTDIR, build a program
#                        against it through pkg-config (shared and static),
#                        uninstall, and check nothing is left behind

EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLE_BINS := $(patsubst examples/%.c,$(B)/examples/%,$(EXAMPLE_SRCS))
# Each example must finish well within this (the echo server also bounds
# itself with alarm()).
EXAMPLE_TIMEOUT ?= 60

.PHONY: examples demo check-examples check-install

examples: $(EXAMPLE_BINS)

# Linked like a user program: public headers only, the shared library, and
# an rpath so that the binaries run from the build tree.
$(B)/examples/%: examples/%.c include/cxvars.h include/cxpool.h $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(LDFLAGS_ALL) -L$(B) -Wl,-rpath,$(abspath $(B)) -lcxvars -lpthread

demo:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory lib $(B)/examples/echo_server
	@echo "#### running $(B)/examples/echo_server"
	@$(B)/examples/echo_server

check-examples: $(EXAMPLE_BINS)
	@set -e; n=0; for x in $(EXAMPLE_BINS); do \
	  echo "== example $$x"; \
	  timeout $(EXAMPLE_TIMEOUT) $$x > $$x.out 2>&1 || { rc=$$?; cat $$x.out; \
	    echo "== example $$x FAILED (exit $$rc)"; exit 1; }; \
	  tail -n 1 $$x.out; n=$$((n+1)); \
	done; echo "== examples: $$n passed, 0 failed"

CHECK_PARTS += check-examples
