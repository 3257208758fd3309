# bench/bench.mk - `make bench` and `make bench-plot` (included by the
# top-level Makefile).
#
#   make bench        builds the shared library and the benchmark programs,
#                     runs them, prints every figure then the SPEC section 4
#                     and 5.5 ratios (name<TAB>value<TAB>unit), and keeps the output
#                     in $(B)/bench.txt; the verdict per target goes to stderr.
#   make bench-icount instructions per operation (set+reset, copy+release,
#                     run no-op, get hit, ...) counted by callgrind beside a
#                     malloc(48)+free pair and an atomic inc+dec pair, with
#                     the SPEC section 5.5 instruction targets; kept in
#                     $(B)/bench/icount/icount.txt (method: bench_icount.c).
#   make bench-plot   draws $(B)/bench.png from $(B)/bench.txt with gnuplot
#                     (running the benchmarks first if that file is missing
#                     or older than the programs).
#
# Knobs (environment or make variables): BENCH_JOBS (jobs per pool sample,
# default 200000), BENCH_REPS (repetitions per figure, default 7 for the
# core figures and 25 for the noisier pool ones),
# BENCH_SAMPLE_MS (length of one core sample, default 12), BENCH_VERBOSE=1
# (spread of the samples on stderr), BENCH_FILTER=name or prefix* (only
# those figures, to profile one: e.g. with perf record on the program;
# bench_pool also takes a comma-separated list of them).
#
# The programs link against the shared library exactly as users do
# (-L$(B) -lcxvars, found at run time through an $ORIGIN rpath), see only
# the public headers (no -Isrc), and are compiled with -O2.

BENCH_B       := $(B)/bench
BENCH_CFLAGS  := $(filter-out -Isrc -O%,$(CFLAGS_ALL)) -O2
BENCH_LDFLAGS := $(LDFLAGS_ALL) -L$(B) -Wl,-rpath,'$$ORIGIN/..'
BENCH_DEPS    := sh tools/deps.sh libglib2.0-dev gnuplot-nox pkg-config
# The pool benchmark needs a library that has the pool (it is decided once
# the library is built: the sub-makes below see it).
BENCH_HAVE_POOL := $(shell nm -D --defined-only $(SHARED_LIB) 2>/dev/null | grep -Eq ' cx_pool_new(@.*)?$$' && echo 1)
BENCH_PROGS   := $(BENCH_B)/bench_core $(if $(BENCH_HAVE_POOL),$(BENCH_B)/bench_pool) \
                 $(BENCH_B)/bench_mem
BENCH_BINS    := $(BENCH_PROGS) $(BENCH_B)/bench_report

.PHONY: bench bench-plot bench-build bench-run bench-icount

bench:
	@$(BENCH_DEPS)
	@$(MAKE) --no-print-directory $(SHARED_LIB)
	@$(MAKE) --no-print-directory bench-build
	@$(MAKE) --no-print-directory bench-run

bench-build: $(SHARED_LIB) $(BENCH_BINS)

# Each program's output is shown as soon as it is done; the ratios, computed
# from all of them, come last. The whole output is kept in $(B)/bench.txt.
bench-run:
	@set -e; out=$(BENCH_B)/out; rm -rf $$out; mkdir -p $$out; \
	echo "== make bench: $$(date -u '+%Y-%m-%d %H:%M UTC'), $$(nproc) CPUs, reps $${BENCH_REPS:-7 (pool 25)}, pool jobs $${BENCH_JOBS:-200000}" >&2; \
	for p in $(BENCH_PROGS); do \
	  n=$$(basename $$p); echo "== $$n" >&2; \
	  $$p > $$out/$$n.txt; cat $$out/$$n.txt; \
	done; \
	$(if $(BENCH_HAVE_POOL),,echo "== bench_pool skipped: the library has no pool (cx_pool_new) yet" >&2;) \
	figs="$(foreach p,$(BENCH_PROGS),$$out/$(notdir $(p)).txt)"; \
	echo "== ratios" >&2; \
	cat $$figs | $(BENCH_B)/bench_report > $$out/ratios.txt; \
	cat $$out/ratios.txt; \
	cat $$figs $$out/ratios.txt > $(B)/bench.txt; \
	echo "== written to $(B)/bench.txt" >&2

$(BENCH_B)/bench_core: bench/bench_core.c bench/bench.h include/cxvars.h $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@ $(BENCH_LDFLAGS) -lcxvars -lpthread

$(BENCH_B)/bench_mem: bench/bench_mem.c bench/bench.h include/cxvars.h $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@ $(BENCH_LDFLAGS) -lcxvars -lpthread

# GLib through pkg-config, queried when the recipe runs (after deps.sh).
$(BENCH_B)/bench_pool: bench/bench_pool.c bench/bench.h include/cxvars.h include/cxpool.h $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $$(pkg-config --cflags glib-2.0) $< -o $@ $(BENCH_LDFLAGS) \
	  -lcxvars $$(pkg-config --libs glib-2.0) -lpthread

# Linked statically (see bench_icount.c: it switches the race-detector
# announcements off, as they are natively).
$(BENCH_B)/bench_icount: bench/bench_icount.c include/cxvars.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@ $(LDFLAGS_ALL) $(STATIC_LIB) $(LDLIBS)

bench-icount:
	@sh tools/deps.sh valgrind
	@$(MAKE) --no-print-directory $(BENCH_B)/bench_icount
	@sh bench/icount.sh $(BENCH_B)/bench_icount $(BENCH_B)/icount

$(BENCH_B)/bench_report: bench/bench_report.c bench/bench.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@ $(LDFLAGS_ALL) -lm

# ---------------------------------------------------------------- plot
$(B)/bench.txt: $(BENCH_BINS)
	@$(MAKE) --no-print-directory bench-run

bench-plot:
	@$(BENCH_DEPS)
	@$(MAKE) --no-print-directory $(SHARED_LIB)
	@$(MAKE) --no-print-directory bench-build
	@$(MAKE) --no-print-directory $(B)/bench.txt
	@set -e; d=$(BENCH_B)/plot; mkdir -p $$d; \
	for f in get_hit_ns get_walk_ns set_reset_ns set_reset_new_ns copy_context_ns; do \
	  awk -F'\t' -v f="$$f" 'index($$1, f "@") == 1 { split($$1, a, "@"); print a[2], $$2 }' \
	    $(B)/bench.txt > $$d/$$f.dat; \
	done; \
	for f in manual_keys_job_ns cxpool_vars_job_ns; do \
	  awk -F'\t' -v f="$$f" 'index($$1, f "@") == 1 { split($$1, a, "@"); print a[2], $$2 }' \
	    $(B)/bench.txt > $$d/$$f.dat; \
	done; \
	val() { awk -F'\t' -v f="$$1" '$$1 == f { print $$2 }' $(B)/bench.txt; }; \
	gs=$$(val pthread_getspecific_ns); mf=$$(val malloc_free_ns); \
	pj=$$(val pool_job_ns); pn=$$(val pool_job_noprop_ns); gt=$$(val gthreadpool_job_ns); \
	{ \
	  echo 'set terminal pngcairo size 1400,560 font ",10"'; \
	  echo 'set output "$(B)/bench.png"'; \
	  echo 'set multiplot layout 1,2 title "cxvars make bench (medians; $(B)/bench.txt)"'; \
	  echo 'set logscale xy'; echo 'set grid'; echo 'set key top left box opaque'; \
	  echo 'set xlabel "variables set in the context (N)"'; echo 'set ylabel "ns per operation"'; \
	  echo 'set xrange [0.7:150000]'; echo 'set yrange [*:5000]'; \
	  echo "plot '$$d/get_hit_ns.dat' w lp t 'get (cache hit)', \\"; \
	  echo "  '$$d/get_walk_ns.dat' w lp t 'get (map walk, 1000 vars in turn)', \\"; \
	  echo "  '$$d/set_reset_ns.dat' w lp t 'set+reset (existing var)', \\"; \
	  echo "  '$$d/set_reset_new_ns.dat' w lp t 'set+reset (new var)', \\"; \
	  echo "  '$$d/copy_context_ns.dat' w lp t 'copy\\_context', \\"; \
	  echo "  $${gs:-1/0} w l dt 2 t 'pthread\\_getspecific', $${mf:-1/0} w l dt 3 t 'malloc(48)+free'"; \
	  echo 'unset logscale y'; echo 'set logscale x 2'; echo 'set yrange [0:*]'; \
	  echo 'set xlabel "variables / pthread keys propagated per job (K)"'; echo 'set ylabel "ns per job (end to end)"'; \
	  echo 'set xrange [0.8:80]'; \
	  if [ -s $$d/cxpool_vars_job_ns.dat ]; then \
	    echo "plot '$$d/cxpool_vars_job_ns.dat' w lp t 'cxpool, K vars set', \\"; \
	    echo "  '$$d/manual_keys_job_ns.dat' w lp t 'GThreadPool + K pthread keys by hand', \\"; \
	    echo "  $${pj:-1/0} w l dt 2 t 'cxpool, propagation on', $${pn:-1/0} w l dt 3 t 'cxpool, submit\\_in(NULL)', \\"; \
	    echo "  $${gt:-1/0} w l dt 4 t 'GThreadPool'"; \
	  else \
	    echo 'unset key'; echo 'set label 1 "pool not measured" at graph 0.5, graph 0.5 center'; \
	    echo 'set yrange [0:1]'; echo 'plot 2 notitle'; \
	  fi; \
	  echo 'unset multiplot'; \
	} > $$d/bench.gp; \
	gnuplot $$d/bench.gp; echo "== written to $(B)/bench.png" >&2
