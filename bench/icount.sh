#!/bin/sh
# bench/icount.sh PROGRAM OUTDIR - instructions per operation through
# callgrind (make bench-icount; see bench/bench_icount.c for the method).
# Prints name<TAB>value<TAB>unit lines on stdout (instructions per
# operation, then ratios against the malloc(48)+free pair) and the SPEC
# section 5.5 instruction targets with a verdict on stderr.
set -eu
prog=$1
out=$2
n1=${ICOUNT_N1:-1000}
n2=${ICOUNT_N2:-11000}
mkdir -p "$out"
ops="malloc_free atomic_pair set_reset set_reset_new with copy_release@1 copy_release@100000 run_noop get_hit get_miss bind_invoke"

count() { # op n -> instructions collected inside measured()
    f="$out/callgrind.$1.$2"
    valgrind --tool=callgrind --toggle-collect=measured --callgrind-out-file="$f" \
        "$prog" "$1" "$2" >/dev/null 2>"$f.log" || { cat "$f.log" >&2; exit 1; }
    awk '$1 == "totals:" || $1 == "summary:" { print $2; exit }' "$f"
}

for op in $ops; do
    a=$(count "$op" "$n1")
    b=$(count "$op" "$n2")
    printf '%s\t%s\tinstr\n' "icount_$op" "$(echo "$a $b $n1 $n2" | awk '{ printf "%.1f", ($2 - $1) / ($4 - $3) }')"
done > "$out/icount.txt"
cat "$out/icount.txt"

awk -F'\t' '
{ v[$1] = $2 }
function verdict(what, val, lim) {
    printf "  %-44s %8.1f <= %6.1f  %s\n", what, val, lim, (val <= lim ? "MET" : "MISSED") > "/dev/stderr"
}
function info(what, val, unit) { printf "  %-44s %8.2f%s\n", what, val, unit > "/dev/stderr" }
END {
    mf = v["icount_malloc_free"]; at = v["icount_atomic_pair"]
    printf "icount_ratio_setreset_vs_malloc\t%.3f\tx\n", v["icount_set_reset"] / mf
    printf "icount_ratio_copy_vs_malloc\t%.3f\tx\n", v["icount_copy_release@100000"] / mf
    printf "icount_ratio_run_vs_atomic\t%.3f\tx\n", v["icount_run_noop"] / at
    print "SPEC section 5.5 instruction targets (callgrind, per operation):" > "/dev/stderr"
    verdict("set+reset @10 (instructions)", v["icount_set_reset"], 350)
    verdict("copy+release @1 (instructions)", v["icount_copy_release@1"], 200)
    verdict("copy+release @100000 (instructions)", v["icount_copy_release@100000"], 200)
    verdict("run no-op (instructions)", v["icount_run_noop"], 60)
    verdict("get hit (instructions)", v["icount_get_hit"], 30)
    info("malloc(48)+free pair", mf, " instr")
    info("atomic inc+dec pair", at, " instr")
    info("cx_bind + cx_callback_invoke (one thread)", v["icount_bind_invoke"], " instr")
    info("set+reset / malloc+free (instructions)", v["icount_set_reset"] / mf, "x")
    info("copy+release / malloc+free (instructions)", v["icount_copy_release@100000"] / mf, "x")
}' "$out/icount.txt"
