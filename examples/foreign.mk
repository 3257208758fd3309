# foreign.mk - the foreign-executor examples (SPEC 5.2): libuv's
# uv_queue_work, GLib's GThreadPool and g_main_context_invoke, and a plain
# pthread work queue, each carrying its submitters' contexts through
# cx_bind / cx_callback_invoke. They are ordinary examples/*.c programs
# (examples.mk builds and runs them, and adds them to every test, valgrind
# and sanitizer pass); this fragment only adds what libuv and GLib need.
#
# Flags come from pkg-config when the recipe runs ($$: the shell expands
# them), after tools/deps.sh has installed libuv1-dev and libglib2.0-dev.

FOREIGN_UV   := $(B)/examples/libuv_work
FOREIGN_GLIB := $(B)/examples/glib_executors

$(FOREIGN_UV): EXAMPLE_CFLAGS = $$(pkg-config --cflags libuv)
$(FOREIGN_UV): EXAMPLE_LIBS = $$(pkg-config --libs libuv)
$(FOREIGN_GLIB): EXAMPLE_CFLAGS = $$(pkg-config --cflags glib-2.0)
$(FOREIGN_GLIB): EXAMPLE_LIBS = $$(pkg-config --libs glib-2.0)
$(FOREIGN_UV) $(FOREIGN_GLIB): | foreign-deps

.PHONY: foreign-deps
foreign-deps:
	@sh tools/deps.sh pkg-config libuv1-dev libglib2.0-dev

# ------------------------------------------------- left out of some runs
# Every example runs natively (make test, check-examples) and under ASan.
# Two are left out of the runs where the third-party library, not cxvars,
# produces the reports (RUN_LABEL names the run: see the top Makefile):
#  - glib_executors: GLib's GMutex/GCond are futexes, not pthread mutexes,
#    so helgrind, DRD and TSan cannot see the locking inside GThreadPool
#    and GMainContext and report GLib's own data (hundreds of reports, all
#    in GLib). memcheck: GLib's pool threads are detached and may still be
#    exiting when the process ends; their TLS block then shows as
#    "possibly lost" (from time to time; the block is glibc's, per thread).
#  - libuv_work, helgrind only: glibc's pthread_mutex_unlock, called by
#    libuv's uv__work_done on the loop's own mutex, is reported against
#    uv_loop_close after a pthread_join that orders the two. DRD, TSan and
#    memcheck report nothing.
ifneq ($(filter helgrind drd tsan memcheck,$(RUN_LABEL)),)
EXTRA_TEST_BINS := $(filter-out $(FOREIGN_GLIB),$(EXTRA_TEST_BINS))
endif
ifeq ($(RUN_LABEL),helgrind)
EXTRA_TEST_BINS := $(filter-out $(FOREIGN_UV),$(EXTRA_TEST_BINS))
endif
