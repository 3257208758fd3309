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
	@$(MAKE) --no-print-directory lib $(B)/examples/echo_server
	@echo "#### running $(B)/examples/echo_server"
	@$(B)/examples/echo_server

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
# A staged install, used the way a downstream build would use it: pkg-config
# reads the DESTDIR copy of cxvars.pc, relocated into DESTDIR with
# --define-variable=prefix=... (or, if the .pc has absolute paths, with
# PKG_CONFIG_SYSROOT_DIR). The program is the README example, compiled with
# nothing but what pkg-config says (no -Iinclude from this tree), once
# against the shared library and once fully static.
INSTALL_TEST := $(abspath $(B))/install-test

check-install: lib
	@set -e; t=$(INSTALL_TEST); root=$$t/root; rm -rf $$t; mkdir -p $$root; \
	echo "== install into DESTDIR=$$root PREFIX=/usr/local"; \
	$(MAKE) --no-print-directory install DESTDIR=$$root PREFIX=/usr/local > $$t/install.log 2>&1 \
	  || { cat $$t/install.log; exit 1; }; \
	for f in include/cxvars.h include/cxpool.h lib/libcxvars.a lib/libcxvars.so \
	         lib/libcxvars.so.$(SOVERSION) lib/libcxvars.so.$(VERSION) lib/pkgconfig/cxvars.pc; do \
	  test -e $$root/usr/local/$$f || { echo "check-install: $$f was not installed"; exit 1; }; \
	done; \
	pcdir=$$root/usr/local/lib/pkgconfig; \
	if grep -q '^libdir=\$${prefix}' $$pcdir/cxvars.pc; then \
	  echo "== pkg-config --define-variable=prefix=$$root/usr/local"; \
	  pc() { PKG_CONFIG_PATH=$$pcdir pkg-config --define-variable=prefix=$$root/usr/local "$$@" cxvars; }; \
	else \
	  echo "== PKG_CONFIG_SYSROOT_DIR=$$root (cxvars.pc has absolute paths)"; \
	  pc() { PKG_CONFIG_PATH=$$pcdir PKG_CONFIG_SYSROOT_DIR=$$root pkg-config "$$@" cxvars; }; \
	fi; \
	cp examples/readme_example.c $$t/prog.c; cd $$t; \
	shared_flags=$$(pc --cflags --libs); static_flags=$$(pc --static --cflags --libs); \
	echo "== pkg-config --cflags --libs cxvars: $$shared_flags"; \
	echo "== pkg-config --static --cflags --libs cxvars: $$static_flags"; \
	case "$$shared_flags" in *"-L$$root/usr/local/lib"*) ;; \
	  *) echo "check-install: pkg-config does not point into DESTDIR"; exit 1;; esac; \
	$(CC) -std=c11 -Wall -Wextra -Werror prog.c -o prog-shared $$shared_flags \
	  -Wl,-rpath,$$root/usr/local/lib; \
	$(CC) -std=c11 -Wall -Wextra -Werror prog.c -o prog-static -static $$static_flags; \
	ldd prog-shared | grep -q "$$root/usr/local/lib/libcxvars.so.$(SOVERSION)" \
	  || { echo "check-install: prog-shared does not load the installed libcxvars.so"; ldd prog-shared; exit 1; }; \
	! ldd prog-static > /dev/null 2>&1 || { echo "check-install: prog-static is dynamic"; exit 1; }; \
	for p in prog-shared prog-static; do \
	  ./$$p > $$p.out; cat $$p.out | sed "s/^/   $$p | /"; \
	  grep -q "job A ran for req-42" $$p.out && grep -q "job B ran for req-43" $$p.out \
	    || { echo "check-install: $$p printed the wrong thing"; exit 1; }; \
	done; \
	cd $(CURDIR); \
	$(MAKE) --no-print-directory uninstall DESTDIR=$$root PREFIX=/usr/local > $$t/uninstall.log 2>&1 \
	  || { cat $$t/uninstall.log; exit 1; }; \
	left=$$(find $$root ! -type d); \
	if [ -n "$$left" ]; then echo "check-install: uninstall left files behind:"; echo "$$left"; exit 1; fi; \
	rm -rf $$t; echo "== install: shared and static builds through pkg-config work; uninstall removed every file"

CHECK_PARTS += check-examples check-install
