#!/bin/sh
# tools/check-symbols.sh MAP SHARED_LIB OBJECT... - the shared library
# exports exactly the symbols the version script MAP names, each in the
# version node MAP puts it in; and every symbol the library's objects give
# default visibility (CX_EXTERN) is named in MAP (otherwise the script's
# "local: *" hides it and programs fail to link against the .so).
# Prints the differences and what to do; exits 1 if there are any.
set -eu
map=$1 lib=$2
shift 2
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# "node name" for each symbol of a global: list in MAP (comments removed).
awk '
    { line = $0; out = ""
      while (line != "") {
          if (incom) { i = index(line, "*/"); if (!i) line = ""
                       else { line = substr(line, i + 2); incom = 0 } }
          else { i = index(line, "/*"); if (!i) { out = out line; line = "" }
                 else { out = out substr(line, 1, i - 1); line = substr(line, i + 2); incom = 1 } } }
      gsub(/[{};]/, " & ", out); n = split(out, w, /[ \t]+/)
      for (k = 1; k <= n; k++) {
          x = w[k]
          if (x == "" || x == ";") continue
          if (x == "{") { node = prev; scope = "global"; continue }
          if (x == "}") { node = ""; continue }
          if (x == "global:") { scope = "global"; continue }
          if (x == "local:") { scope = "local"; continue }
          if (node != "" && scope == "global") print node, x
          prev = x } }
' "$map" | sort > "$t/map"

# "node name" for each dynamic symbol the library defines (nm prints
# name@@NODE for a default version; the nodes themselves are type A).
nm -D --defined-only "$lib" | awk '$2 != "A" {
    name = $3; node = "(no version)"
    if ((i = index(name, "@")) > 0) { node = substr(name, i); sub(/^@+/, "", node)
                                      name = substr(name, 1, i - 1) }
    print node, name }' | sort > "$t/lib"

# Names the objects define with default visibility (what would be exported
# without the script).
for o in "$@"; do readelf -sW "$o"; done | awk '
    ($5 == "GLOBAL" || $5 == "WEAK") && $6 == "DEFAULT" && $7 != "UND" && $8 != "" { print $8 }
' | sort -u > "$t/objs"
awk '{ print $2 }' "$t/map" | sort -u > "$t/mapnames"

fail=0
if ! cmp -s "$t/map" "$t/lib"; then
    fail=1
    echo "check-symbols: $lib does not export what $map says:"
    comm -23 "$t/map" "$t/lib" | sed 's/^/    in the script, not exported: /'
    comm -13 "$t/map" "$t/lib" | sed 's/^/    exported, not in the script: /'
fi
extra=$(comm -13 "$t/mapnames" "$t/objs")
gone=$(comm -23 "$t/mapnames" "$t/objs")
if [ -n "$extra" ]; then
    fail=1
    echo "check-symbols: defined with default visibility (CX_EXTERN) but not in $map,"
    echo "  so the shared library hides them:"
    printf '    %s\n' $extra
fi
if [ -n "$gone" ]; then
    fail=1
    echo "check-symbols: named in $map but defined by no object of the library:"
    printf '    %s\n' $gone
fi
if [ $fail = 1 ]; then
    last=$(awk '{ print $1 }' "$t/map" | sort -V | tail -n 1)
    echo "  To fix: a new public function goes into the newest node ($last) of"
    echo "  $map, one line \"    name;\"; a released node never changes. A name"
    echo "  no object defines is a function declared but not implemented (leave"
    echo "  it out of the script until it is) or one removed (an ABI break)."
    exit 1
fi
echo "check-symbols: $lib exports the $(wc -l < "$t/map") symbols of $map" \
     "($(awk '{ print $1 }' "$t/map" | sort -uV | tr '\n' ' ' | sed 's/ $//'))"
