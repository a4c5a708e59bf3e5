#!/bin/sh
# pipeline.sh: `belt run` and `belt validate` on pipeline configs (a
# "pipeline" key; belt-pipeline(5)).  The guarantees: no item lost
# or duplicated (source = sink + dead letters + filtered), ordered mode keeps
# source order exactly, memory stays bounded on a 10-million-item source,
# SIGINT drains with a summary and leaves no process behind, every bad
# config is exit 2 with its message and nothing run, a misbehaving stream
# program is named and does not hang belt.  Also the shipped examples of
# configs/pipelines/.
. "$(dirname "$0")/lib.sh"

# Sanitizer builds (scripts/test's tsan/asan variants) are 5-15x slower and
# use much more memory: smaller inputs, no RSS bound.
sanitized=no
if [ -n "${top_builddir:-}" ] && grep -q -- '-fsanitize' "$top_builddir/Makefile" 2>/dev/null; then
    sanitized=yes
fi

# The example plugin (make builds it); compiled here if this build has no
# shared one (--disable-shared).
plugin=""
for p in "${top_builddir:-.}/configs/pipelines/plugins/.libs/upper.so" \
         "$srcdir/build/configs/pipelines/plugins/.libs/upper.so"; do
    [ -f "$p" ] && plugin=$p && break
done
if [ -z "$plugin" ]; then
    ${CC:-cc} -shared -fPIC -O2 -I"$srcdir/include" -o upper.so \
        "$srcdir/configs/pipelines/plugins/upper.c" && plugin=$T/upper.so
fi
[ -n "$plugin" ] && cp "$plugin" "$T/upper.so"

# run_pipe SECONDS ARGS...: run_belt with a time limit (a hang fails the
# test with status 124 instead of stalling the suite).
run_pipe() {
    local limit=$1
    shift
    rc=0
    timeout -k 5 "$limit" "$BELT" "$@" >"$T/out" 2>"$T/err" || rc=$?
}

# ---- the shipped examples ----------------------------------------------------

cp "$srcdir"/configs/pipelines/*.json "$srcdir"/configs/pipelines/access.log "$T/"

t_begin "example access-log.json: top 404 paths, same as the shell"
run_pipe 60 run -q access-log.json
grep '" 404 ' access.log | awk '{ print $7 }' | sort | uniq -c | sort -rn >want.txt
eq "exit" "$rc" 0 && eq "top-404.txt" "$(cat top-404.txt)" "$(cat want.txt)" && t_ok

t_begin "example fan-out.json: 20 numbers fan out to 210 squares, summed"
run_pipe 120 run -q fan-out.json
eq "exit" "$rc" 0 && eq "sum" "$(cat out)" 16170 && t_ok

t_begin "example plugin.json: plugin stages, dead letters with the reason"
if [ -f upper.so ]; then
    run_pipe 60 run -q plugin.json
    eq "exit (dead letters)" "$rc" 1 &&
    eq "sink" "$(cat shouted.log)" "$(grep -v /wp-admin access.log | tr a-z A-Z)" &&
    eq "dead letters" "$(lines rejected.jsonl)" "$(grep -c /wp-admin access.log)" &&
    eq "reason" "$(jqr 'map(.stage + ": " + .reason) | unique | join(",")' rejected.jsonl)" \
        "drop-admin: contains the rejected text" && t_ok
else
    t_fail "no upper.so plugin (neither built nor compilable)"
fi

t_begin "belt validate accepts every example"
run_belt validate access-log.json fan-out.json plugin.json
eq "exit" "$rc" 0 && eq "lines" "$(grep -c ': ok (pipeline of ' out)" 3 && t_ok

# ---- no item lost or duplicated ----------------------------------------------

n=$([ $sanitized = yes ] && echo 20000 || echo 200000)
write count.json <<JSON
{"pipeline": {
  "source": {"range": {"from": 1, "to": $n}},
  "stages": [
    {"name": "drop-sevens", "builtin": "grep", "pattern": "7\$", "invert": true, "workers": 2},
    {"name": "cat", "mode": "stream", "run": "cat", "workers": 2},
    {"name": "reject-99", "plugin": "./upper.so", "symbol": "reject", "arg": "99", "workers": 2, "capacity": 16}
  ],
  "sink": {"file": "count.out"},
  "dead_letter": "count.dead"
}}
JSON
t_begin "no item lost or duplicated: source = sink + dead letters + filtered ($n items)"
run_pipe 120 run -q count.json
filtered=$(seq 1 "$n" | grep -c '7$')
dead=$(seq 1 "$n" | grep -v '7$' | grep -c 99)
{ cat count.out; jq -r .item count.dead; } | sort -n >got.txt
seq 1 "$n" | grep -v '7$' >want.txt
eq "exit (dead letters)" "$rc" 1 && eq "dead letters" "$(lines count.dead)" "$dead" &&
eq "sink" "$(lines count.out)" $((n - filtered - dead)) &&
eq "sink + dead letters, each once" "$(cmp -s got.txt want.txt && echo same)" same && t_ok

write items.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 60}},
  "stages": [
    {"name": "odd-fails", "workers": 3, "run": "n={}; test $((n % 2)) -eq 0 && echo $n"},
    {"name": "twice", "workers": 2, "run": "echo {}; echo {}"}
  ],
  "sink": {"file": "items.out"},
  "dead_letter": "items.dead"
}}
JSON
t_begin "per-item stages: failures are dead letters with their exit, fan-out counted"
run_pipe 120 run -q items.json
eq "exit" "$rc" 1 && eq "dead" "$(lines items.dead)" 30 &&
eq "dead have exit 1" "$(jqr 'map(.exit) | unique | join(",")' items.dead)" 1 &&
eq "dead stage" "$(jqr 'map(.stage) | unique | join(",")' items.dead)" odd-fails &&
eq "sink: each even number twice" "$(sort -n items.out | uniq -c | awk '$1 == 2' | wc -l | tr -d ' ')" 30 &&
eq "sink lines" "$(lines items.out)" 60 && t_ok

# ---- ordered mode -------------------------------------------------------------

write ordered.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 40}},
  "stages": [
    {"name": "jitter", "workers": 4, "run": "n={}; case $((n % 4)) in 1) sleep 0.05;; 2) sleep 0.02;; esac; echo $n"},
    {"name": "same", "builtin": "identity", "workers": 2}
  ],
  "sink": {"file": "ordered.out"},
  "ordered": true
}}
JSON
t_begin "ordered: 4 workers on a per-item stage with uneven item times keep source order"
run_pipe 120 run -q ordered.json
eq "exit" "$rc" 0 && eq "order" "$(cat ordered.out)" "$(seq 1 40)" && t_ok

sed -e 's/"ordered": true/"ordered": false/' ordered.json >unordered.json
t_begin "unordered: the same pipeline emits as items finish (and loses none)"
run_pipe 120 run -q unordered.json
eq "exit" "$rc" 0 && eq "all there" "$(sort -n ordered.out | tr '\n' ' ')" "$(seq 1 40 | tr '\n' ' ')" &&
t_expect "not in source order (slow items come last)" test "$(cat ordered.out)" != "$(seq 1 40)" && t_ok

n=$([ $sanitized = yes ] && echo 20000 || echo 300000)
write ordered2.json <<JSON
{"pipeline": {
  "source": {"range": {"from": 1, "to": $n}},
  "stages": [
    {"name": "shout", "plugin": "./upper.so", "symbol": "upper", "workers": 3, "capacity": 8},
    {"name": "sample", "builtin": "sample", "every": 1, "workers": 2}
  ],
  "sink": {"file": "ordered2.out"},
  "batch": 16,
  "reorder_window": 4,
  "ordered": true
}}
JSON
t_begin "ordered: $n items through multi-worker plugin and builtin stages, small window"
run_pipe 120 run -q ordered2.json
eq "exit" "$rc" 0 && eq "order" "$(cmp -s ordered2.out <(seq 1 "$n") && echo same)" same && t_ok

# ---- memory bound -----------------------------------------------------------------

n=$([ $sanitized = yes ] && echo 200000 || echo 10000000)
write big.json <<JSON
{"pipeline": {
  "source": {"range": {"from": 1, "to": $n}},
  "stages": [
    {"name": "a", "builtin": "identity"},
    {"name": "b", "builtin": "grep", "pattern": "^[0-9]+\$", "workers": 2},
    {"name": "c", "builtin": "sample", "every": 1}
  ],
  "sink": {"command": "wc -l > big.count"}
}}
JSON
t_begin "memory: $n items through three stages, every one counted at the sink"
rc=0
/usr/bin/time -f %M -o big.rss timeout -k 5 300 "$BELT" run -q big.json >out 2>err || rc=$?
rss=$(tail -n 1 big.rss)
if eq "exit" "$rc" 0 && eq "sink count" "$(tr -d ' ' <big.count)" "$n"; then
    if [ $sanitized = yes ]; then
        echo "# sanitizer build: peak RSS ${rss} KiB not checked"
        t_ok
    else
        echo "# peak RSS: ${rss} KiB"
        t_expect "peak RSS ${rss} KiB under 64 MiB" test "$rss" -lt 65536 && t_ok
    fi
fi

# ---- SIGINT -------------------------------------------------------------------------

# An endless fast source (as fast as the shell counts: the source stops at
# once on a drain, not after the rest of its 64 KiB read chunk has gone
# through the slow stage) through a slow per-item stage: only a signal
# ends it.
write sigint.json <<'JSON'
{"pipeline": {
  "source": {"command": "i=0; while :; do i=$((i + 1)); echo $i; done"},
  "stages": [
    {"name": "slow", "workers": 2, "run": "sleep 0.05; echo {}", "capacity": 4},
    {"name": "pass", "mode": "stream", "run": "cat"}
  ],
  "sink": {"file": "sigint.out"}
}}
JSON

# exited PID: the process is gone or a zombie (not yet waited for).
exited() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null)
    [ -z "$st" ] || [ "${st#Z}" != "$st" ]
}

# descendants PID: every process under PID (children, grandchildren...).
descendants() {
    local c
    for c in $(pgrep -P "$1"); do
        echo "$c"
        descendants "$c"
    done
}

t_begin "SIGINT: the source stops, what is in flight drains, summary, exit 130, no orphans"
# --progress: the live lines tell when the stage's workers are busy.
"$BELT" run --progress sigint.json >out 2>err &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
if wait_for grep -aq 'busy [12]/2' err; then
    kids=$(descendants $bpid | tr '\n' ' ')
    kill -INT $bpid
    # The drain must end by itself: a bounded wait, then the hard way
    # (and the test fails).
    by_itself=yes
    if ! wait_for exited $bpid; then
        echo "# still draining after 10 s: second SIGINT"
        by_itself=no
        kill -INT $bpid
    fi
    rc=0
    wait $bpid || rc=$?
    sink=$(lines sigint.out)
    reached=$(sed -n 's/.*: \([0-9]*\) items reached the sink.*/\1/p' err)
    still=""
    for k in $kids; do kill -0 "$k" 2>/dev/null && still="$still $k"; done
    eq "exit" "$rc" 130 && contains "message" err "draining" &&
    eq "the drain ended by itself" "$by_itself" yes &&
    t_expect "items in flight reached the sink" test "$sink" -gt 0 &&
    contains "summary" err "stage " && eq "summary's sink count" "$reached" "$sink" &&
    eq "sink holds 1..N in full" "$(sort -n sigint.out | uniq | tr '\n' ' ')" "$(seq 1 "$sink" | tr '\n' ' ')" &&
    eq "processes left (of: $kids)" "$still" "" && t_ok
else
    t_fail "the stage never got busy"
    kill -KILL $bpid 2>/dev/null
fi

write sigint2.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 100}},
  "stages": [
    {"name": "stuck", "workers": 2, "run": "trap '' TERM; sleep 30; echo {}"}
  ],
  "sink": {"file": "sigint2.out"}
}}
JSON
t_begin "second SIGINT kills at once: exit 130, no orphans"
# The second signal _exit()s on purpose without joining the engine's
# threads (run_signal.c): under TSan that is a "thread leak" report (exit 66)
# by design, so only that report is turned off here; races still count.
TSAN_OPTIONS="${TSAN_OPTIONS:-} report_thread_leaks=0" "$BELT" run sigint2.json >out 2>err &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
twokids() { [ "$(descendants $bpid | wc -l)" -ge 4 ]; }
if wait_for twokids; then
    kids=$(descendants $bpid | tr '\n' ' ')
    kill -INT $bpid
    wait_for grep -q draining err
    # Not sooner than 20 ms after the first: that would count as the
    # first delivered twice (run_signal.c).
    sleep 0.2
    kill -INT $bpid
    rc=0
    wait $bpid || rc=$?
    gone_all() { for k in $kids; do kill -0 "$k" 2>/dev/null && return 1; done; return 0; }
    eq "exit" "$rc" 130 && t_expect "no orphans (of: $kids)" wait_for gone_all && t_ok
else
    t_fail "stage processes did not start"
    kill -KILL $bpid 2>/dev/null
fi

# ---- bad configs: exit 2, the message, nothing run --------------------------------

# bad NAME WANT JSON: belt run and belt validate both give exit 2 and WANT.
bad() {
    local name=$1 want=$2
    printf '%s\n' "$3" >"$name.json"
    rm -f ran sink.out
    t_begin "bad config $name: exit 2, '$want', nothing run"
    run_pipe 30 run -q "$name.json"
    eq "exit" "$rc" 2 && contains "message" err "$want" &&
    grep -qE "^$name\.json(:[0-9]+(:[0-9]+)?)?: " err &&
    eq "nothing run" "$(ls ran sink.out 2>/dev/null)" "" &&
    { run_pipe 30 validate "$name.json"; eq "validate exit" "$rc" 2; } &&
    contains "validate message" err "$want" && t_ok
}
src='"source": {"command": "touch ran; echo x"}'
sink='"sink": {"file": "sink.out"}'
bad unknown-builtin 'did you mean "identity"' \
    "{\"pipeline\": {$src, \"stages\": [{\"builtin\": \"identiy\"}], $sink}}"
bad unknown-mode "stream" \
    "{\"pipeline\": {$src, \"stages\": [{\"run\": \"cat\", \"mode\": \"streem\"}], $sink}}"
bad no-kind "stages[0]" \
    "{\"pipeline\": {$src, \"stages\": [{\"name\": \"x\"}], $sink}}"
bad missing-plugin "no-such-plugin.so: cannot open shared object file" \
    "{\"pipeline\": {$src, \"stages\": [{\"plugin\": \"./no-such-plugin.so\", \"symbol\": \"f\"}], $sink}}"
bad missing-symbol "undefined symbol: no_such_fn" \
    "{\"pipeline\": {$src, \"stages\": [{\"plugin\": \"./upper.so\", \"symbol\": \"no_such_fn\"}], $sink}}"
bad missing-source "no-such-input.txt" \
    "{\"pipeline\": {\"source\": {\"file\": \"no-such-input.txt\"}, \"stages\": [{\"run\": \"touch ran\"}], $sink}}"
bad unwritable-sink "/nonexistent-dir/out.txt" \
    "{\"pipeline\": {$src, \"stages\": [{\"builtin\": \"identity\"}], \"sink\": {\"file\": \"/nonexistent-dir/out.txt\"}}}"
bad window-deadlock "reorder_window" \
    "{\"pipeline\": {$src, \"stages\": [{\"builtin\": \"identity\"}], $sink, \"ordered\": true, \"reorder_window\": 0}}"

t_begin "capacity 0 (a rendezvous) runs to the end without deadlock"
write cap0.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 5000}},
  "stages": [
    {"name": "a", "builtin": "identity", "capacity": 0, "workers": 2},
    {"name": "b", "mode": "stream", "run": "cat", "capacity": 0},
    {"name": "c", "builtin": "identity", "capacity": 0}
  ],
  "sink": {"file": "cap0.out"},
  "ordered": true
}}
JSON
run_pipe 60 run -q cap0.json
eq "exit" "$rc" 0 && eq "all, in order" "$(cmp -s cap0.out <(seq 1 5000) && echo same)" same && t_ok

# ---- misbehaving stream programs ----------------------------------------------------

write early.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 100000}},
  "stages": [{"name": "quitter", "mode": "stream", "run": "head -n 3"}],
  "sink": {"file": "early.out"}
}}
JSON
t_begin "stream program exiting early: named, exit 1, no hang"
run_pipe 60 run -q early.json
eq "exit" "$rc" 1 && contains "stage named" err "stage quitter" &&
contains "says why" err "exited early" && t_ok

# perl block-buffers its stdout into a pipe and then waits after its input
# ended: the stall rule must catch it and point at stdbuf -oL.
write buffered.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 10}},
  "stages": [{"name": "buffered", "mode": "stream", "stall_timeout": "1s",
              "run": "perl -ne 'print; END { sleep 30 }'"}],
  "sink": {"file": "buffered.out"}
}}
JSON
t_begin "stream program that block-buffers and waits: named with the stdbuf -oL hint, no hang"
run_pipe 25 run -q buffered.json
eq "exit" "$rc" 1 && contains "stage named" err "stage buffered" &&
contains "hint" err "stdbuf -oL" && t_ok

# ---- the display and the summary ------------------------------------------------------

write slow.json <<'JSON'
{"pipeline": {
  "source": {"range": {"from": 1, "to": 30}},
  "stages": [
    {"name": "quick", "builtin": "identity"},
    {"name": "crawl", "run": "sleep 0.02; echo {}", "capacity": 2},
    {"name": "after", "builtin": "identity"}
  ],
  "sink": {"file": "slow.out"}
}}
JSON
t_begin "--progress draws per-stage lines; the summary names the bottleneck"
run_pipe 60 run --progress slow.json
eq "exit" "$rc" 0 && contains "live line" err "crawl" && contains "channel fill" err "chan " &&
contains "summary header" err "filtered" &&
contains "verdict" err "bottleneck: stage crawl (inbound channel full" && t_ok

t_begin "-q: nothing on stderr"
run_pipe 60 run -q slow.json
eq "exit" "$rc" 0 && eq "stderr" "$(cat err)" "" && t_ok

t_begin "options of job configs are refused with the reason"
run_pipe 10 run -j 4 slow.json
eq "exit" "$rc" 2 && contains "message" err "per stage" && t_ok

t_begin "--dead-letter overrides the config's file"
run_pipe 60 run -q --dead-letter mine.jsonl items.json
eq "exit" "$rc" 1 && eq "dead letters" "$(lines mine.jsonl)" 30 && t_ok

t_begin "--halt-on-error stops at the first failed item, and says so"
run_pipe 60 run -q --halt-on-error --dead-letter halt.jsonl items.json
eq "exit" "$rc" 1 && contains "message" err "odd-fails" &&
t_expect "fewer than all 30 failures ($(lines halt.jsonl))" test "$(lines halt.jsonl)" -lt 30 && t_ok

t_begin "stdin source, stdout sink"
write stdin.json <<'JSON'
{"pipeline": {"source": {"stdin": true}, "stages": [{"builtin": "grep", "pattern": "5"}], "sink": {"stdout": true}}}
JSON
rc=0
seq 1 100 | timeout -k 5 30 "$BELT" run -q stdin.json >out 2>err || rc=$?
eq "exit" "$rc" 0 && eq "out" "$(cat out)" "$(seq 1 100 | grep 5)" && t_ok

t_done
