# bench/bind.mk - the bound-callback figures (bench_bind.c): cx_bind +
# cx_callback_invoke through a plain pthread queue against the same queue
# carrying a bare function pointer (SPEC 5.5, target <= 1.3x), and the
# same pair on GLib's GThreadPool. Joins the
# programs `make bench` runs (bench.mk, included before this fragment:
# fragments are included in sorted order); bench_report prints the ratio.

BENCH_PROGS += $(BENCH_B)/bench_bind

# GLib through pkg-config, queried when the recipe runs (after deps.sh).
$(BENCH_B)/bench_bind: bench/bench_bind.c bench/bench.h include/cxvars.h $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $$(pkg-config --cflags glib-2.0) $< -o $@ $(BENCH_LDFLAGS) \
	  -lcxvars $$(pkg-config --libs glib-2.0) -lpthread

# (BENCH_BINS was fixed when bench.mk was read: name the program here.)
bench-build $(B)/bench.txt: $(BENCH_B)/bench_bind
