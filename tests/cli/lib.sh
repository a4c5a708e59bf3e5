# tests/cli/lib.sh: helpers for the CLI tests, which run the real built
# `belt` program.  Source it first thing:
#
#   . "$(dirname "$0")/lib.sh"
#   t_begin "what is tested"; ...; t_ok / t_fail "why"
#   ...
#   t_done                       # prints "N passed, N failed", sets status
#
# Environment: BELT (the program; default: ./src/belt under $top_builddir or
# the current directory), srcdir (the source tree; default: two levels up).
# Every test runs in a fresh temporary directory ($T, also the cwd) removed
# at exit.  Results files are checked with jq; without jq the script is
# skipped (exit 77; Debian: apt-get install jq).

set -u

: "${srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
if [ -z "${BELT:-}" ]; then
    for b in "${top_builddir:-.}/src/belt" "$srcdir/build/src/belt"; do
        [ -x "$b" ] && BELT=$(cd "$(dirname "$b")" && pwd)/belt && break
    done
fi
if [ -z "${BELT:-}" ] || [ ! -x "$BELT" ]; then
    echo "lib.sh: no belt program (set BELT)" >&2
    exit 99
fi
if ! command -v jq >/dev/null 2>&1; then
    echo "lib.sh: jq not found (apt-get install jq); skipping"
    echo "0 passed, 0 failed"
    exit 77
fi
CONFIGS="$srcdir/tests/cli/configs"
export LC_ALL=C

T=$(mktemp -d "${TMPDIR:-/tmp}/belt-cli.XXXXXX")
trap 't_cleanup' EXIT
cd "$T" || exit 99

t_passed=0
t_failed=0
t_name=""
t_bg_pids=""

t_cleanup() {
    local p
    for p in $t_bg_pids; do
        kill -KILL "$p" 2>/dev/null
    done
    cd / && rm -rf "$T"
}

# t_begin NAME: starts a test (a test that never calls t_ok/t_fail counts
# as failed at the next t_begin or at t_done).
t_begin() {
    t_end_pending
    t_name=$1
    t_open=1
}

t_end_pending() {
    if [ "${t_open:-0}" = 1 ]; then
        t_fail "no verdict"
    fi
}

t_ok() {
    t_passed=$((t_passed + 1))
    echo "ok - $t_name"
    t_open=0
}

# t_fail WHY: fails the current test, with the reason.
t_fail() {
    t_failed=$((t_failed + 1))
    echo "FAIL - $t_name: $*"
    t_open=0
}

# t_check COND_DESCRIPTION CMD...: runs CMD; passes when it succeeds.
# Several t_check in one test: the first failure fails it.
t_expect() {
    local what=$1
    shift
    if "$@"; then
        return 0
    fi
    t_fail "$what"
    return 1
}

# t_verdict: passes the test unless a t_expect already failed it.
t_verdict() {
    if [ "${t_open:-0}" = 1 ]; then
        t_ok
    fi
}

t_done() {
    t_end_pending
    echo "$t_passed passed, $t_failed failed"
    [ "$t_failed" -eq 0 ]
    exit $?
}

# run_belt ARGS...: runs belt, output in $T/out and $T/err, status in $rc.
run_belt() {
    rc=0
    "$BELT" "$@" >"$T/out" 2>"$T/err" || rc=$?
}

# jqr FILTER FILE: jq -r over a JSON Lines file, slurped (an array).
jqr() {
    jq -r -s "$1" "$2"
}

# lines FILE: number of lines.
lines() {
    wc -l <"$1" | tr -d ' '
}

# eq WHAT GOT WANT: t_expect with a readable message.
eq() {
    if [ "$2" = "$3" ]; then
        return 0
    fi
    t_fail "$1: got '$2', want '$3'"
    return 1
}

# contains WHAT FILE TEXT: the file holds TEXT (fixed string).
contains() {
    if grep -qF -- "$3" "$2"; then
        return 0
    fi
    t_fail "$1: '$3' not in $(head -c 600 "$2" | tr '\n' '|')"
    return 1
}

# wait_for COND_CMD... : waits up to 10 s for a command to succeed.
wait_for() {
    local i=0
    while ! "$@"; do
        i=$((i + 1))
        [ $i -ge 200 ] && return 1
        sleep 0.05
    done
    return 0
}

# alive PIDFILE...: true if any pid written in the files still runs.
alive() {
    local f p
    for f in "$@"; do
        [ -s "$f" ] || continue
        for p in $(cat "$f"); do
            if kill -0 "$p" 2>/dev/null; then
                return 0
            fi
        done
    done
    return 1
}

# write FILE: writes stdin to $T/FILE (configs inline in the tests).
write() {
    cat >"$T/$1"
}
