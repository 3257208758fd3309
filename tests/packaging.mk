# tests/packaging.mk - checks of what cxvars ships besides the code
# (included by the top-level Makefile).
#
#   make check-symbols  build/libcxvars.so exports exactly the symbols of
#                       src/cxvars.map, in its version nodes, and nothing
#                       CX_EXTERN is left out of the map
#   make check-man      every public function of include/*.h has a man
#                       page (its own or its group's), and the pages render
#                       without groff warnings
#
# check-install (examples/examples.mk) installs the pages, the CMake
# package and the docs, and uses them.

.PHONY: check-symbols check-man

check-symbols: $(SHARED_LIB) $(STATIC_LIB)
	@sh tools/check-symbols.sh $(SYMBOL_MAP) $(SHARED_REAL) $(LIB_OBJS)

check-man:
	@sh man/pages.sh check

CHECK_PARTS += check-symbols check-man
