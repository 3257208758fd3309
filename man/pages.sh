#!/bin/sh
# man/pages.sh - bookkeeping of the manual pages in man/ (section 3).
#
# Each man/<page>.3 documents a group of functions (or macros): the NAME
# section lists them all, page name first, e.g.
#     cx_pool_submit, cx_pool_try_submit, cx_pool_submit_in \- queue a job
# Every other name gets a one-line link page, ".so man3/<page>.3", written
# at install time, so that `man cx_pool_try_submit` finds its group.
#
#   sh man/pages.sh names        print "name page" for every linked name
#   sh man/pages.sh links DIR    write DIR/<name>.3 for every linked name
#   sh man/pages.sh check        every public function (CX_EXTERN cx_*) of
#                                include/*.h is named by a page; no name is
#                                claimed twice or shadows a page; every page
#                                renders without warnings (when man is there)
# Run from the top of the source tree.
set -eu

# "name page" for every name in every page's NAME section, pages included.
all_names() {
    for f in man/*.3; do
        page=$(basename "$f" .3)
        awk -v page="$page" -v file="$f" '
            /^\.SH +"?NAME"?/ { getline; line = $0
                sub(/ *\\-.*/, "", line); n = split(line, a, /, */)
                for (i = 1; i <= n; i++) if (a[i] != "") print a[i], page
                found = 1; exit }
            END { if (!found) { print file ": no NAME section" > "/dev/stderr"; exit 1 } }
        ' "$f"
    done
}

# Public functions declared in the headers (cx__* are not API: no page).
header_functions() {
    sed -n 's/^CX_EXTERN[^(]*[^A-Za-z0-9_]\(cx_[A-Za-z0-9_]*\)(.*/\1/p' include/*.h |
        grep -v '^cx__' | sort -u
}

cmd=${1:-}
case "$cmd" in
names)
    all_names | awk '$1 != $2'
    ;;
links)
    dir=${2:?usage: pages.sh links DIR}
    mkdir -p "$dir"
    all_names | awk '$1 != $2' | while read -r name page; do
        printf '.so man3/%s.3\n' "$page" > "$dir/$name.3"
    done
    ;;
check)
    fail=0
    names=$(all_names) || exit 1
    dup=$(printf '%s\n' "$names" | awk '{ print $1 }' | sort | uniq -d)
    if [ -n "$dup" ]; then
        echo "check-man: named by more than one page (keep each in one NAME section):"
        printf '%s\n' "$names" | awk -v d="$dup" '
            BEGIN { n = split(d, a, "\n"); for (i = 1; i <= n; i++) dup[a[i]] = 1 }
            $1 in dup { print "    " $1 " in " $2 ".3" }'
        fail=1
    fi
    for f in man/*.3; do
        page=$(basename "$f" .3)
        first=$(printf '%s\n' "$names" | awk -v p="$page" '$2 == p { print $1; exit }')
        [ "$first" = "$page" ] || {
            echo "check-man: $f: its NAME section must start with $page"; fail=1; }
    done
    missing=$(header_functions | while read -r fn; do
        printf '%s\n' "$names" | awk -v n="$fn" '$1 == n { f = 1 } END { exit !f }' ||
            echo "$fn"; done)
    if [ -n "$missing" ]; then
        echo "check-man: public functions of include/*.h without a man page:"
        printf '    %s\n' $missing
        echo "  add each to the NAME section (and SYNOPSIS) of its group's page in man/,"
        echo "  or write man/<name>.3 for it"
        fail=1
    fi
    if command -v man > /dev/null 2>&1; then
        for f in man/*.3; do
            # groff's warnings (and man-db's) go to stderr; the text is not kept.
            w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 > /dev/null) || true
            if [ -n "$w" ]; then
                echo "check-man: $f renders with warnings:"; printf '%s\n' "$w" | sed 's/^/    /'
                fail=1
            fi
        done
    else
        echo "check-man: man not installed (make deps): pages not rendered"
    fi
    [ $fail = 0 ] || exit 1
    n=$(printf '%s\n' "$names" | wc -l)
    echo "check-man: $(ls man/*.3 | wc -l) pages name $n functions and macros;" \
         "all $(header_functions | wc -l) public functions of include/*.h have a page"
    ;;
*)
    echo "usage: sh man/pages.sh names | links DIR | check" >&2
    exit 2
    ;;
esac
