#!/bin/sh
# check_symbols.sh: libbelt.so must export only belt_* symbols (the build
# passes -export-symbols-regex '^belt_'; internal helpers are belt__ and
# static, so they must not leak either).  Lists the dynamic symbols the
# shared library defines and fails on any other name.  Skips (77) when the
# build has no shared library (--disable-shared).
set -eu

lib="${top_builddir:-.}/src/.libs/libbelt.so"
if [ ! -f "$lib" ]; then
    echo "SKIP: $lib not built (--disable-shared?)"
    exit 77
fi

syms=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sort -u)
total=$(printf '%s\n' "$syms" | grep -c . || true)
bad=$(printf '%s\n' "$syms" | grep -v '^belt_' | grep . || true)
internal=$(printf '%s\n' "$syms" | grep '^belt__' || true)

echo "libbelt.so exports $total symbols"
status=0
if [ -n "$bad" ]; then
    echo "FAIL: exported symbols without the belt_ prefix:"
    printf '  %s\n' $bad
    status=1
fi
if [ -n "$internal" ]; then
    echo "FAIL: internal belt__ symbols exported:"
    printf '  %s\n' $internal
    status=1
fi
for want in belt_version belt_strerror belt_err_name; do
    if ! printf '%s\n' "$syms" | grep -qx "$want"; then
        echo "FAIL: $want is not exported"
        status=1
    fi
done
[ $status -eq 0 ] && echo "PASS: only belt_* symbols exported"
exit $status
