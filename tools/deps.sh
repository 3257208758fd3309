#!/bin/sh
# Installs the Debian packages cxvars needs that are missing; does nothing
# (and needs no network) when all are present. Usage: tools/deps.sh [pkg...]
# Run by make deps (and so by make test, check, bench, demo), never by a
# plain make.
set -eu
pkgs="$*"
# The library alone needs gcc (or clang), make and libck-dev; the rest is
# for the tests and checks (cmocka, valgrind, clang's sanitizers and
# libFuzzer; GLib and libuv for the foreign-executor examples; cmake and man-db for check-install), the benchmarks (GLib,
# gnuplot) and pkg-config for both.
[ -n "$pkgs" ] || pkgs="gcc g++ make pkg-config libck-dev libcmocka-dev valgrind clang libclang-rt-14-dev libglib2.0-dev libuv1-dev gnuplot-nox cmake man-db"
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: run as root or install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
