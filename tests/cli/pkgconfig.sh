#!/bin/sh
# pkgconfig.sh: a program builds against the build tree through
# belt-uninstalled.pc, as the README says: `PKG_CONFIG_PATH=<builddir>
# pkg-config --cflags --libs belt` gives the source tree's include/ and the
# build tree's libbelt, a tiny C program compiles and links with it, and it
# runs (LD_LIBRARY_PATH=<builddir>/src/.libs).  Skipped (77) without a C
# compiler ($CC, else cc or gcc) or pkg-config ($PKG_CONFIG).

# The build tree, absolute, before lib.sh moves into its temporary directory.
build=$(cd "${top_builddir:-.}" && pwd) || exit 99
. "$(dirname "$0")/lib.sh"

pc=${PKG_CONFIG:-pkg-config}
cc=
for c in "${CC:-}" cc gcc; do
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then
        cc=$c
        break
    fi
done
if [ -z "$cc" ] || ! command -v "$pc" >/dev/null 2>&1; then
    echo "pkgconfig.sh: no C compiler or no $pc; skipping"
    echo "0 passed, 0 failed"
    exit 77
fi
# A build without the shared library links the static one, which needs
# jansson and the rest (Requires.private, Libs.private).
static=
[ -f "$build/src/.libs/libbelt.so" ] || static=--static
export PKG_CONFIG_PATH="$build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

t_begin "configure wrote belt-uninstalled.pc into the build tree"
if [ -f "$build/belt-uninstalled.pc" ]; then t_ok; else t_fail "no $build/belt-uninstalled.pc"; fi

t_begin "pkg-config belt finds it, with belt's version"
want=$("$BELT" --version | sed 's/^belt //')
got=$("$pc" --modversion belt 2>"$T/err") || got="(failed: $(cat "$T/err"))"
eq "version" "$got" "$want" && t_ok

t_begin "--cflags point at the source tree's include/"
cflags=$("$pc" --cflags belt 2>"$T/err") || cflags=
inc=$(printf '%s\n' "$cflags" | tr ' ' '\n' | sed -n 's/^-I//p' | head -n 1)
if [ -n "$inc" ] && [ -f "$inc/belt.h" ] && [ -f "$inc/belt/chan.h" ]; then
    t_ok
else
    t_fail "cflags '$cflags': no belt.h under '$inc'"
fi

t_begin "--libs point at the build tree's libbelt"
"$pc" --libs $static belt >"$T/libs" 2>&1 || true
contains "libs" "$T/libs" "-L$build/src/.libs" &&
contains "libs" "$T/libs" "-lbelt" && t_ok

write prog.c <<'C'
/* Uses the public API only: the version, a channel, the error names. */
#include <belt.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    belt_chan *ch = belt_chan_bounded(4, sizeof(int));
    if (ch == NULL)
        return 1;
    int sum = 0;
    for (int i = 1; i <= 4; i++)
        if (belt_chan_send(ch, &i) != BELT_OK)
            return 2;
    belt_chan_close(ch);
    int x, rc;
    while ((rc = belt_chan_recv(ch, &x)) == BELT_OK)
        sum += x;
    belt_chan_free(ch);
    printf("belt %s sum %d end %s\n", belt_version(), sum, belt_err_name(rc));
    return rc == BELT_CLOSED && strcmp(belt_strerror(rc), "channel closed") == 0
        ? 0 : 3;
}
C

t_begin "a program compiles and links with pkg-config's flags"
# shellcheck disable=SC2046  # pkg-config's output is meant to be split
if "$cc" -std=c11 -Wall -Werror -o prog prog.c $("$pc" --cflags --libs $static belt) \
    >"$T/out" 2>&1; then
    t_ok
else
    t_fail "$cc failed: $(head -c 800 "$T/out")"
fi

t_begin "and runs against the build tree's library"
rc=0
LD_LIBRARY_PATH="$build/src/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ./prog \
    >"$T/out" 2>"$T/err" || rc=$?
eq "exit" "$rc" 0 && eq "output" "$(cat "$T/out")" "belt $want sum 10 end CLOSED" && t_ok

if [ -z "$static" ] && command -v ldd >/dev/null 2>&1; then
    t_begin "the library it loads is the build tree's, not an installed one"
    LD_LIBRARY_PATH="$build/src/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd ./prog \
        >"$T/ldd" 2>&1 || true
    contains "ldd" "$T/ldd" "$build/src/.libs/libbelt.so" && t_ok
fi

t_done
