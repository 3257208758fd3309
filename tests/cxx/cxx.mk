# tests/cxx/cxx.mk - the C++ layer (include/cxvars.hpp), built with g++ and
# clang++ (C++17) against the static library (included by the top-level
# Makefile; works with any B and SAN).
#
#   make check-cxx   builds every tests/cxx/*.cpp with each compiler of
#                    CXX_TEST_COMPILERS into $(B)/tests/cxx/<compiler>/ and
#                    runs them all
#
# test_cxx also runs in every test, valgrind and sanitizer run (through
# EXTRA_TEST_BINS), built with the C++ compiler of $(CC)'s family so that a
# sanitizer build links one runtime. test_cxx_unwind needs the library to
# leave a context when a C++ exception or a thread's end unwinds through
# cx_context_run (SPEC 5.1); it runs in check-cxx only.

CXX_TEST_COMPILERS ?= g++ clang++
CXX_TEST_FLAGS := -std=c++17 -D_GNU_SOURCE -g -gdwarf-4 $(OPT) -Wall -Wextra -Werror -Iinclude
CXX_TEST_DIR   := $(B)/tests/cxx
CXX_TEST_NAMES := $(patsubst tests/cxx/%.cpp,%,$(wildcard tests/cxx/*.cpp))
CXX_CHECK_BINS := $(foreach c,$(CXX_TEST_COMPILERS),$(addprefix $(CXX_TEST_DIR)/$(c)/,$(CXX_TEST_NAMES)))
CXX_FOR_CC     := $(if $(findstring clang,$(CC)),clang++,g++)

EXTRA_TEST_BINS += $(CXX_TEST_DIR)/$(CXX_FOR_CC)/test_cxx
CHECK_PARTS     += check-cxx

.PHONY: check-cxx

# $(1): the compiler; one pattern rule per compiler.
define cxx_test_rule
$(CXX_TEST_DIR)/$(1)/%: tests/cxx/%.cpp include/cxvars.hpp include/cxvars.h $(STATIC_LIB)
	@mkdir -p $$(@D)
	$(1) $(CXX_TEST_FLAGS) $$(SAN_FLAGS) $$< -o $$@ $$(LDFLAGS_ALL) $$(STATIC_LIB) $$(LDLIBS)
endef
$(foreach c,$(sort $(CXX_TEST_COMPILERS) $(CXX_FOR_CC)),$(eval $(call cxx_test_rule,$(c))))

# Runs every program even if one fails; fails if any did.
check-cxx: $(CXX_CHECK_BINS)
	@rc=0; for t in $(CXX_CHECK_BINS); do echo "== cxx $$t"; \
	  CX_TEST_SCALE=$(CX_TEST_SCALE) $$t || { echo "== cxx $$t FAILED"; rc=1; }; \
	done; exit $$rc
