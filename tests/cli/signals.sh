#!/bin/sh
# signals.sh: SIGINT and SIGTERM of a running belt: exit 130/143, a result
# line for every job, no orphan processes; a second SIGINT kills at once;
# SIGKILL of belt loses no finished result; a closed output pipe stops belt.
. "$(dirname "$0")/lib.sh"

# Each job records its shell's pid and a background child's pid, then waits:
# both must be gone after belt exits.
write sig.json <<'JSON'
{
  "workers": 2,
  "jobs": [
    {"id": "p{i}", "run": "sleep 60 & echo $$ $! > pid.{i}.tmp; mv pid.{i}.tmp pid.{i}; wait", "matrix": {"i": [1, 2, 3, 4]}}
  ]
}
JSON

# start_belt ARGS...: runs belt in the background; its pid in $bpid.
start_belt() {
    "$BELT" "$@" >out 2>err &
    bpid=$!
    t_bg_pids="$t_bg_pids $bpid"
}

both_pids() { [ -s pid.1 ] && [ -s pid.2 ]; }
gone() { ! alive pid.*; }

for sig in INT TERM; do
    want=$([ $sig = INT ] && echo 130 || echo 143)
    t_begin "SIG$sig: exit $want, every job reported, no orphans"
    rm -f pid.* belt-results.jsonl
    start_belt run sig.json
    if ! wait_for both_pids; then
        t_fail "jobs did not start"
        continue
    fi
    kill -$sig $bpid
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" "$want" &&
    eq "lines" "$(lines belt-results.jsonl)" 4 &&
    eq "statuses" "$(jqr 'map(.status) | unique | join(",")' belt-results.jsonl)" canceled &&
    eq "ran two" "$(jqr 'map(select(.attempts > 0)) | length' belt-results.jsonl)" 2 &&
    eq "reason" "$(jqr 'map(.error != null) | all' belt-results.jsonl)" true &&
    t_expect "no orphans (pids $(cat pid.* | tr '\n' ' '))" wait_for gone &&
    contains "message" err "stopping" && t_ok
done

# GNU timeout forwards a signal twice (to belt, then to its process group):
# that is one request, so belt stops gracefully rather than killing at once.
t_begin "SIGINT through timeout(1), delivered twice: still a graceful stop"
rm -f pid.* belt-results.jsonl
timeout 120 "$BELT" run sig.json >out 2>err &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
if wait_for both_pids; then
    kill -INT $bpid
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" 130 &&
    eq "lines" "$(lines belt-results.jsonl)" 4 &&
    t_expect "no kill message" eval '! grep -q "second signal" err' &&
    t_expect "no orphans" wait_for gone && t_ok
else
    t_fail "jobs did not start"
fi

# A job that ignores SIGTERM: the first SIGINT starts the kill grace period
# (20 s here), the second must not wait for it.
write stubborn.json <<'JSON'
{
  "workers": 1,
  "jobs": [
    {"id": "stubborn", "run": "trap '' TERM; sleep 60 & echo $$ $! > pid.1.tmp; mv pid.1.tmp pid.1; wait; wait; wait", "kill_grace": "20s"}
  ]
}
JSON

t_begin "second SIGINT kills at once, jobs included"
rm -f pid.*
start_belt run stubborn.json
if wait_for test -s pid.1; then
    kill -INT $bpid
    sleep 0.5
    t0=$(date +%s)
    kill -INT $bpid
    rc=0; wait $bpid || rc=$?
    took=$(( $(date +%s) - t0 ))
    eq "exit" "$rc" 130 && eq "fast" "$([ $took -le 3 ] && echo yes || echo "no (${took}s)")" yes &&
    t_expect "no orphans" wait_for gone && t_ok
else
    t_fail "job did not start"
fi

t_begin "SIGINT in quick mode: exit 130, no orphans"
rm -f pid.*
seq 1 10 >in.txt
start_belt run -j 2 -a in.txt --command 'sleep 60 & echo $$ $! > pid.{}.tmp; mv pid.{}.tmp pid.{}; wait'
if wait_for both_pids; then
    kill -INT $bpid
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" 130 && t_expect "no orphans" wait_for gone && t_ok
else
    t_fail "jobs did not start"
fi

write mixed.json <<'JSON'
{
  "workers": 2,
  "jobs": [
    {"id": "quick", "run": "echo fast"},
    {"id": "slow", "run": "echo $$ > pid.1.tmp; mv pid.1.tmp pid.1; exec sleep 60"}
  ]
}
JSON

t_begin "SIGKILL of belt loses no finished result"
rm -f pid.* belt-results.jsonl
start_belt run mixed.json
if wait_for test -s pid.1 && wait_for grep -q '"quick"' belt-results.jsonl; then
    kill -KILL $bpid
    wait $bpid 2>/dev/null
    eq "line" "$(jqr '.[0] | [.id, .status, .stdout] | @json' belt-results.jsonl)" '["quick","ok","fast\n"]' && t_ok
    kill -KILL -"$(cat pid.1)" 2>/dev/null
else
    t_fail "did not get going"
fi

write many.json <<'JSON'
{
  "workers": 2,
  "jobs": [
    {"id": "long", "run": "echo $$ > pid.1.tmp; mv pid.1.tmp pid.1; exec sleep 60"},
    {"id": "n{i}", "kind": "sleep", "duration": "20ms", "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}}
  ]
}
JSON

t_begin "closed output pipe: belt stops, exit 1, no orphans"
rm -f pid.*
t0=$(date +%s)
{ "$BELT" run -q --results - many.json 2>pipe.err; echo $? >rc.txt; } | head -n 1 >/dev/null
took=$(( $(date +%s) - t0 ))
eq "exit" "$(cat rc.txt)" 1 && contains "message" pipe.err "Broken pipe" && eq "fast" "$([ $took -le 10 ] && echo yes || echo "no (${took}s)")" yes &&
t_expect "no orphans" wait_for gone && t_ok

t_begin "one wording for canceled jobs: running, queued and waiting"
write cancel.json <<'JSON'
{
  "workers": 1,
  "jobs": [
    {"id": "run", "run": "echo $$ > pid.1.tmp; mv pid.1.tmp pid.1; exec sleep 60"},
    {"id": "queued", "run": "sleep 60"},
    {"id": "waiting", "run": "true", "after": ["queued"]}
  ]
}
JSON
rm -f pid.* belt-results.jsonl
start_belt run cancel.json
if wait_for test -s pid.1; then
    kill -INT $bpid
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" 130 && eq "lines" "$(lines belt-results.jsonl)" 3 &&
    eq "one wording" "$(jqr 'map(.error) | unique | join("|")' belt-results.jsonl)" "canceled: interrupted by SIGINT" && t_ok
else
    t_fail "the job did not start"
fi

t_done
