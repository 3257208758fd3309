#!/bin/sh
# tools/check-install.sh - a staged install, used the way downstream builds
# use it (run by `make check-install`, see examples/examples.mk, which sets
# MAKE, CC, VERSION, SOVERSION and T, the scratch directory).
#
# Installs into DESTDIR=$T/root with PREFIX=/usr/local, then:
#   - every file is there (headers, libraries, cxvars.pc, the CMake package,
#     man pages and their links, docs);
#   - pkg-config reads the DESTDIR copy of cxvars.pc, relocated with
#     --define-variable=prefix=... (or PKG_CONFIG_SYSROOT_DIR if the .pc
#     has absolute paths); --cflags is the include directory alone (no
#     flags of ck's), --modversion is $VERSION; the README example built
#     with nothing but what pkg-config says runs, shared and fully static;
#   - CMake: tests/cmake-consumer finds the package under the DESTDIR
#     (CMAKE_PREFIX_PATH), builds against cxvars::cxvars, shared and with
#     CXVARS_USE_STATIC_LIBS=ON, and runs (its cx_version() must be the
#     package's version);
#   - the user-style programs of tests/robust (exit-time destructor,
#     handoff under helgrind/DRD, a -fsanitize=thread program) build and
#     pass against the installed shared library;
#   - man: `man cx_pool_submit` (a link to its group's page) and the
#     overview pages are found through MANPATH;
# and finally uninstalls and checks that no file is left behind.
set -eu
: "${MAKE:=make}" "${CC:=cc}" "${VERSION:?}" "${SOVERSION:?}" "${T:?}"
root=$T/root
pre=$root/usr/local
top=$(pwd)
fail() { echo "check-install: $*"; exit 1; }

rm -rf "$T"; mkdir -p "$root"
echo "== install into DESTDIR=$root PREFIX=/usr/local"
$MAKE --no-print-directory install DESTDIR="$root" PREFIX=/usr/local > "$T/install.log" 2>&1 ||
    { cat "$T/install.log"; exit 1; }

# ------------------------------------------------------------- the files
links=$(sh man/pages.sh names | awk '{ print "share/man/man3/" $1 ".3" }')
pages=$(for p in man/*.3; do echo "share/man/man3/${p#man/}"; done)
docs=$(for d in docs/*.md; do echo "share/doc/cxvars/$d"; done)
for f in include/cxvars.h include/cxpool.h lib/libcxvars.a lib/libcxvars.so \
         lib/libcxvars.so.$SOVERSION lib/libcxvars.so.$VERSION lib/pkgconfig/cxvars.pc \
         lib/cmake/cxvars/cxvarsConfig.cmake lib/cmake/cxvars/cxvarsConfigVersion.cmake \
         share/man/man3/cxvars.3 share/man/man3/cxpool.3 $pages $links \
         share/doc/cxvars/README.md share/doc/cxvars/LICENSE share/doc/cxvars/CHANGELOG.md $docs \
         share/cxvars/tsan.supp; do
    test -e "$pre/$f" || fail "$f was not installed"
done
# Every link names a page that is installed.
for l in $links; do
    target=$(sed -n 's/^\.so //p' "$pre/$l")
    test -e "$pre/share/man/$target" || fail "$l points at $target, which is not installed"
done
# The CMake package computes its paths from its own location.
if grep -n '/usr/local' "$pre"/lib/cmake/cxvars/*.cmake; then
    fail "the CMake package has absolute paths (above): it cannot be moved"
fi
echo "== installed: $(find "$root" ! -type d | wc -l) files" \
     "($(echo "$pages" | wc -w) man pages, $(echo "$links" | wc -w) links)"

# ------------------------------------------------------------- pkg-config
pcdir=$pre/lib/pkgconfig
if grep -q '^libdir=${prefix}' "$pcdir/cxvars.pc"; then
    echo "== pkg-config --define-variable=prefix=$pre"
    pc() { PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$pre" "$@" cxvars; }
else
    echo "== PKG_CONFIG_SYSROOT_DIR=$root (cxvars.pc has absolute paths)"
    pc() { PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$root pkg-config "$@" cxvars; }
fi
cflags=$(pc --cflags | sed "s/ *$//")
shared_flags=$(pc --cflags --libs)
static_flags=$(pc --static --cflags --libs)
modversion=$(pc --modversion)
echo "== pkg-config --cflags --libs cxvars: $shared_flags"
echo "== pkg-config --static --cflags --libs cxvars: $static_flags"
echo "== pkg-config --modversion cxvars: $modversion"
[ "$cflags" = "-I$pre/include" ] ||
    fail "pkg-config --cflags should be just -I$pre/include, is: $cflags"
[ "$modversion" = "$VERSION" ] || fail "pkg-config --modversion is $modversion, not $VERSION"
case "$shared_flags" in *"-L$pre/lib"*) ;;
    *) fail "pkg-config does not point into DESTDIR";; esac
case "$static_flags" in *-lck*-lpthread*) ;;
    *) fail "pkg-config --static does not give -lck -lpthread";; esac

cp examples/readme_example.c "$T/prog.c"
cd "$T"
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror prog.c -o prog-shared $shared_flags -Wl,-rpath,"$pre/lib"
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror prog.c -o prog-static -static $static_flags
ldd prog-shared | grep -q "$pre/lib/libcxvars.so.$SOVERSION" ||
    { ldd prog-shared; fail "prog-shared does not load the installed libcxvars.so"; }
! ldd prog-static > /dev/null 2>&1 || fail "prog-static is dynamic"
for p in prog-shared prog-static; do
    ./$p > $p.out
    sed "s/^/   $p | /" $p.out
    grep -q "job A ran for req-42" $p.out && grep -q "job B ran for req-43" $p.out ||
        fail "$p printed the wrong thing"
done
cd "$top"

# ------------------------------------------------------------------ CMake
if command -v cmake > /dev/null 2>&1; then
    for variant in shared static; do
        b=$T/cmake-$variant
        opt=""; [ $variant = static ] && opt=-DCXVARS_USE_STATIC_LIBS=ON
        echo "== cmake: tests/cmake-consumer, CMAKE_PREFIX_PATH=$pre $opt"
        # shellcheck disable=SC2086
        cmake -S tests/cmake-consumer -B "$b" -DCMAKE_C_COMPILER="$CC" \
              -DCMAKE_PREFIX_PATH="$pre" $opt > "$T/cmake-$variant.log" 2>&1 &&
            cmake --build "$b" >> "$T/cmake-$variant.log" 2>&1 ||
            { cat "$T/cmake-$variant.log"; fail "the CMake consumer ($variant) did not build"; }
        grep -q "^cxvars_DIR:PATH=$pre/lib/cmake/cxvars\$" "$b/CMakeCache.txt" ||
            fail "CMake found cxvars elsewhere than in DESTDIR: $(grep '^cxvars_DIR' "$b/CMakeCache.txt")"
        if [ $variant = shared ]; then
            ldd "$b/consumer" | grep -q "$pre/lib/libcxvars.so.$SOVERSION" ||
                { ldd "$b/consumer"; fail "the CMake consumer does not load the installed libcxvars.so"; }
        else
            ! ldd "$b/consumer" | grep -q libcxvars ||
                fail "the static CMake consumer loads libcxvars.so"
        fi
        "$b/consumer" > "$b/out" || { cat "$b/out"; fail "the CMake consumer ($variant) failed"; }
        sed "s/^/   cmake-$variant | /" "$b/out"
        grep -q "cx_version() $modversion," "$b/out" ||
            fail "the CMake consumer's cx_version() is not pkg-config's $modversion"
    done
else
    echo "== cmake not installed (make deps): CMake package not tested"
fi

# ------------------------------------------------------ user-style programs
# The robustness programs (tests/robust), built as a user builds them:
# public headers and the installed shared library only, through
# pkg-config. main_exit checks the shared library's exit-time destructor;
# handoff runs under helgrind and DRD with no suppression file; tsan_user
# is compiled with -fsanitize=thread against the uninstrumented installed
# library (the library finds the TSan runtime in the program at load).
ucflags="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Itests $shared_flags -Wl,-rpath,$pre/lib -lpthread"
for u in main_exit handoff; do
    $CC tests/robust/$u.c -o "$T/$u" $ucflags || fail "tests/robust/$u.c does not build against the install"
done
echo "== main_exit against the installed libcxvars.so"
"$T/main_exit" > "$T/main_exit.out" 2>&1 || { cat "$T/main_exit.out"; fail "main_exit failed"; }
tail -n 1 "$T/main_exit.out" | sed 's/^/   /'
if command -v valgrind > /dev/null 2>&1; then
    for tool in helgrind drd; do
        echo "== handoff against the installed libcxvars.so under $tool (no suppressions)"
        CX_TEST_SCALE=5 valgrind --tool=$tool --error-exitcode=99 --quiet --fair-sched=yes \
            "$T/handoff" > "$T/handoff.$tool" 2>&1 || { cat "$T/handoff.$tool"; fail "handoff under $tool"; }
        tail -n 1 "$T/handoff.$tool" | sed 's/^/   /'
    done
fi
if command -v clang > /dev/null 2>&1; then
    echo "== tsan_user: clang -fsanitize=thread against the installed libcxvars.so"
    clang -fsanitize=thread -g tests/robust/tsan_user.c -o "$T/tsan_user" $ucflags ||
        fail "tests/robust/tsan_user.c does not build against the install"
    TSAN_OPTIONS=halt_on_error=1 CX_TEST_SCALE=50 "$T/tsan_user" > "$T/tsan_user.out" 2>&1 ||
        { cat "$T/tsan_user.out"; fail "tsan_user reported races against the installed library"; }
    tail -n 1 "$T/tsan_user.out" | sed 's/^/   /'
fi

# -------------------------------------------------------------------- man
if command -v man > /dev/null 2>&1; then
    for name in cx_pool_submit cx_pool_try_submit CX_WITH cxvars cxpool cx_version; do
        echo "== MANPATH=$pre/share/man man -P cat $name"
        MANPATH=$pre/share/man MANWIDTH=80 man -P cat "$name" > "$T/man.out" 2> "$T/man.err" ||
            { cat "$T/man.err"; fail "man $name failed"; }
        grep -q "$name" "$T/man.out" && grep -q SYNOPSIS "$T/man.out" ||
            { cat "$T/man.out" "$T/man.err"; fail "man $name did not show its page"; }
        sed -n '1p' "$T/man.out" | sed 's/^/   man | /'
    done
else
    echo "== man not installed (make deps): man pages not looked up"
fi

# -------------------------------------------------------------- uninstall
$MAKE --no-print-directory uninstall DESTDIR="$root" PREFIX=/usr/local > "$T/uninstall.log" 2>&1 ||
    { cat "$T/uninstall.log"; exit 1; }
left=$(find "$root" ! -type d)
[ -z "$left" ] || fail "uninstall left files behind:
$left"
for d in lib/cmake/cxvars share/doc/cxvars; do
    ! test -d "$pre/$d" || fail "uninstall left the directory $d"
done
rm -rf "$T"
echo "== install: pkg-config (shared, static), CMake (shared, static) and man work;" \
     "uninstall removed every file"
