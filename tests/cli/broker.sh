#!/bin/sh
# broker.sh: belt across machines through a real Redis on loopback:
# `belt run --broker`, `belt worker`, `belt status`.  Every case starts its
# workers (and, where it needs one of its own, its redis-server) and is
# bounded with `timeout`; lib.sh's trap kills whatever is left.
#
#   1. three workers: every result exactly once, with the worker's host/id
#   2. kill -9 of a worker in the middle of a long job: reclaimed after the
#      visibility timeout, completed by another worker
#   3. Redis killed and restarted (AOF, appendfsync always) mid-run: the run
#      completes, nothing lost or doubled
#   4. a job that kills its worker every time: dead-lettered, recorded as
#      status error with the reason
#   5. wrong password, unreachable host, URL typos: clear message, exit 2
#   6. signed jobs: no key / bad key files refused (exit 2), --insecure
#      warns once, forged and replayed jobs never run (dead-lettered with
#      the reason), a forged result refused, a worker with another key
#      refuses and the run says why, a key changed in three steps
#   7. clean-up and honest status: no result stream left by a finished,
#      canceled or crashed run (TTL), status counts what is queued, a run
#      with no live worker says so and waits, a killed submitter's run
#      continued by --resume, Redis' memory bounded on a long run
#   and `belt status` (text and --json) on what the cases left behind.
#
# Skipped (77) when redis-server is not installed (scripts/deps.sh installs
# it).  The belt programs may be sanitizer builds: timeouts are generous.
. "$(dirname "$0")/lib.sh"


LIMIT=90 # seconds for any one belt command (sanitizer builds are slow)

# free_port, redis_start, redis_up, rc_, worker, stop_workers: broker_lib.sh
. "$srcdir/tests/cli/broker_lib.sh"
need_redis

# run_broker ARGS...: `belt run --broker $URL ARGS` bounded by LIMIT.
run_broker() {
    rc=0
    timeout -s KILL "$LIMIT" "$BELT" run --broker "$URL" "$@" >"$T/out" 2>"$T/err" || rc=$?
}

# at_least FILE N: FILE exists with N lines or more.
at_least() {
    [ -f "$1" ] && [ "$(lines "$1")" -ge "$2" ]
}

# once FILE N: every id of FILE exactly once, N of them, all ok.
once() {
    eq "lines" "$(lines "$1")" "$2" &&
    eq "distinct ids" "$(jqr 'map(.id) | unique | length' "$1")" "$2" &&
    eq "statuses" "$(jqr 'map(.status) | unique | join(",")' "$1")" ok
}

# Broker jobs are signed: one key for the whole file (section 6 tries
# others).
"$BELT" keygen "$T/belt.key" >/dev/null || exit 99
export BELT_KEY_FILE="$T/belt.key"

PORT=$(free_port)
URL="redis://127.0.0.1:$PORT"
if ! redis_start "$T/redis" "$PORT"; then
    echo "broker.sh: redis-server did not start on port $PORT:" >&2
    cat "$T/redis/redis.log" >&2 2>/dev/null
    exit 99
fi

# ---- 1 ---------------------------------------------------------------------

write three.json <<'JSON'
{
  "jobs": [
    {"id": "s{i}", "kind": "sleep", "duration": "30ms", "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}},
    {"id": "e{i}", "run": "echo out-{i}; echo err-{i} >&2", "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}},
    {"id": "after", "run": "echo last", "after": ["s*", "e*"]}
  ]
}
JSON

t_begin "three workers: every result exactly once, with host and worker id"
worker w1 --namespace one -j 2
worker w2 --namespace one -j 2
worker w3 --namespace one -j 2
run_broker -q --namespace one --results r1.jsonl three.json
eq "exit" "$rc" 0 && once r1.jsonl 31 &&
eq "stdout kept" "$(jqr 'map(select(.id == "e7")) | .[0].stdout' r1.jsonl)" "out-7" &&
eq "stderr kept" "$(jqr 'map(select(.id == "e7")) | .[0].stderr' r1.jsonl)" "err-7" &&
eq "after ran last" "$(jqr '.[-1].id' r1.jsonl)" after &&
eq "host in every line" "$(jqr 'map(select((.host | type) == "string" and (.host | length) > 0)) | length' r1.jsonl)" 31 &&
eq "worker id in every line" "$(jqr 'map(select(.worker | tostring | length > 0)) | length' r1.jsonl)" 31 &&
t_ok

t_begin "the same records as a local run, plus host and delivery"
run_belt run -q --results local.jsonl three.json
eq "local exit" "$rc" 0 &&
eq "keys" "$(jqr '.[0] | keys | join(",")' r1.jsonl)" "$(jqr '.[0] | keys + ["delivery", "host"] | sort | join(",")' local.jsonl)" &&
eq "same statuses and outputs" "$(jqr 'map([.id, .seq, .status, .exit_code, .stdout, .stderr]) | sort | @json' r1.jsonl)" "$(jqr 'map([.id, .seq, .status, .exit_code, .stdout, .stderr]) | sort | @json' local.jsonl)" &&
t_ok

t_begin "belt status: the finished run, live workers, an empty queue"
rc=0
timeout "$LIMIT" "$BELT" status --broker "$URL" --namespace one >st.txt 2>st.err || rc=$?
timeout "$LIMIT" "$BELT" status --broker "$URL" --namespace one --json >st.json 2>>st.err || rc=$((rc + $?))
eq "exit" "$rc" 0 &&
eq "json workers" "$(jq '.workers | length' st.json)" 3 &&
eq "json queue" "$(jq '.queue.length' st.json)" 0 &&
eq "json run" "$(jq -r '.runs | map(.state) | join(",")' st.json)" done &&
eq "json run jobs" "$(jq -r '.runs[0].jobs' st.json)" 31 &&
contains "text: workers" st.txt "workers" && contains "text: done" st.txt "done" &&
t_ok
stop_workers w1 w2 w3

t_begin "workers leave the heartbeat hash on SIGTERM"
eq "workers left" "$(rc_ hlen one:workers)" 0 && t_ok

t_begin "SIGINT with jobs queued and no worker: exit 130, canceled, queue emptied"
write idle.json <<'JSON'
{"jobs": [{"id": "q{i}", "kind": "noop", "matrix": {"i": [1, 2, 3, 4, 5]}}]}
JSON
timeout -s KILL "$LIMIT" "$BELT" run -q --broker "$URL" --namespace idle --results ri.jsonl idle.json >outi 2>erri &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
queued() { [ "$(rc_ xlen idle:jobs)" = 5 ]; }
if wait_for queued; then
    kill -INT $bpid
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" 130 && eq "lines" "$(lines ri.jsonl)" 5 &&
    eq "statuses" "$(jqr 'map(.status) | unique | join(",")' ri.jsonl)" canceled &&
    eq "queue emptied" "$(rc_ xlen idle:jobs)" 0 &&
    eq "run state" "$(rc_ hvals idle:runs | jq -r .state)" canceled &&
    eq "result stream deleted" "$(rc_ --scan --pattern 'idle:run:*' | wc -l)" 0 &&
    timeout "$LIMIT" "$BELT" status --broker "$URL" --namespace idle --json >sti.json &&
    eq "status: waiting" "$(jq .queue.waiting sti.json)" 0 &&
    eq "status: in flight" "$(jq .queue.pending sti.json)" 0 && t_ok
else
    t_fail "jobs never queued"
fi

# ---- 2 ---------------------------------------------------------------------

write long.json <<'JSON'
{
  "jobs": [
    {"id": "long", "run": "echo $PPID >> started; sleep 3; echo done"},
    {"id": "short", "kind": "noop"}
  ]
}
JSON

t_begin "kill -9 of a worker mid-job: the job is reclaimed and done elsewhere"
rm -f started
worker wa --namespace two -j 1 --visibility 1s
timeout -s KILL "$LIMIT" "$BELT" run -q --broker "$URL" --namespace two --results r2.jsonl long.json >out2 2>err2 &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
if wait_for test -s started; then
    victim=$(head -n 1 started)
    exec 3>&2 2>/dev/null # no "Killed" notice from the shell
    kill -KILL "$victim"
    wait "$(cat "$T/wa.pid")" 2>/dev/null
    exec 2>&3 3>&-
    worker wb --namespace two -j 1 --visibility 1s
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" 0 && once r2.jsonl 2 &&
    eq "started twice" "$(lines started)" 2 &&
    eq "ran by the second worker" "$(jqr 'map(select(.id == "long")) | .[0].worker | tostring | test(":'"$(sed -n 2p started)"'$")' r2.jsonl)" true &&
    eq "stdout" "$(jqr 'map(select(.id == "long")) | .[0].stdout' r2.jsonl)" "done" &&
    t_ok
else
    t_fail "the long job never started"
fi
stop_workers wb

# ---- 3 ---------------------------------------------------------------------

write many.json <<'JSON'
{
  "jobs": [
    {"id": "m{i}", "kind": "sleep", "duration": "150ms", "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]}}
  ]
}
JSON

t_begin "Redis killed and restarted with AOF mid-run: the run completes, nothing lost"
worker wc --namespace three -j 2
timeout -s KILL "$LIMIT" "$BELT" run -q --broker "$URL" --namespace three --results r3.jsonl many.json >out3 2>err3 &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
if wait_for at_least r3.jsonl 4; then
    kill -KILL "$rpid"
    wait "$rpid" 2>/dev/null
    sleep 1 # down for a while: both sides see refused connections
    redis_start "$T/redis" "$PORT"
    rc=0; wait $bpid || rc=$?
    eq "exit" "$rc" 0 && once r3.jsonl 24 && t_ok
else
    t_fail "no results came"
fi
stop_workers wc

# ---- 4 ---------------------------------------------------------------------

# The job's shell is a child of the worker process: $PPID is the worker.
write killer.json <<'JSON'
{
  "jobs": [
    {"id": "killer", "run": "kill -9 $PPID; sleep 5"},
    {"id": "fine", "run": "echo fine"}
  ]
}
JSON

t_begin "a job that kills its worker every time is dead-lettered"
timeout -s KILL "$LIMIT" "$BELT" run -q --broker "$URL" --namespace four --max-deliveries 2 --results r4.jsonl killer.json >out4 2>err4 &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
# Keep one worker alive at a time until the run ends (bounded).  The
# shell's "Killed" notices for the workers the job kills are not wanted.
exec 3>&2 2>/dev/null
i=0
while kill -0 $bpid 2>/dev/null && [ $i -lt 8 ]; do
    i=$((i + 1))
    worker wk$i --namespace four -j 1 --visibility 1s
    wpid=$(cat "$T/wk$i.pid")
    while kill -0 "$wpid" 2>/dev/null && kill -0 $bpid 2>/dev/null; do
        sleep 0.2
    done
    kill -0 "$wpid" 2>/dev/null || wait "$wpid" 2>/dev/null
done
rc=0; wait $bpid || rc=$?
for n in $(seq 1 $i); do
    kill -TERM "$(cat "$T/wk$n.pid")" 2>/dev/null
done
exec 2>&3 3>&-
eq "exit" "$rc" 1 && eq "lines" "$(lines r4.jsonl)" 2 &&
eq "fine" "$(jqr 'map(select(.id == "fine")) | .[0].status' r4.jsonl)" ok &&
eq "killer" "$(jqr 'map(select(.id == "killer")) | .[0].status' r4.jsonl)" error &&
eq "reason" "$(jqr 'map(select(.id == "killer")) | .[0].error | test("dead-letter")' r4.jsonl)" true &&
eq "dead stream" "$(rc_ xlen four:dead)" 1 &&
t_ok

t_begin "belt status lists the dead-lettered job"
rc=0
timeout "$LIMIT" "$BELT" status --broker "$URL" --namespace four >st4.txt 2>st4.err || rc=$?
timeout "$LIMIT" "$BELT" status --broker "$URL" --namespace four --json >st4.json 2>>st4.err || rc=$((rc + $?))
eq "exit" "$rc" 0 && eq "json dead" "$(jq '.dead.length' st4.json)" 1 &&
eq "json dead key" "$(jq -r '.dead.last[0].key' st4.json)" killer &&
contains "text" st4.txt "killer" && t_ok
for n in $(seq 1 $i); do
    wait "$(cat "$T/wk$n.pid")" 2>/dev/null
done

# ---- 5 ---------------------------------------------------------------------

APORT=$(free_port)
mpid=$rpid
redis_start "$T/redis-auth" "$APORT" --requirepass s3cret
apid=$rpid

t_begin "wrong password: clear error, exit 2 (run, worker, status)"
run_belt run --broker "redis://:nope@127.0.0.1:$APORT" three.json
eq "run exit" "$rc" 2 && contains "run message" err "password" &&
run_belt worker --broker "redis://:nope@127.0.0.1:$APORT" &&
eq "worker exit" "$rc" 2 &&
run_belt status --broker "redis://:nope@127.0.0.1:$APORT" &&
eq "status exit" "$rc" 2 && t_ok

t_begin "the password from BELT_REDIS_PASSWORD"
rc=0
BELT_REDIS_PASSWORD=s3cret timeout "$LIMIT" "$BELT" status --broker "redis://127.0.0.1:$APORT" >out 2>err || rc=$?
eq "exit" "$rc" 0 && t_ok

t_begin "unreachable host: clear error, exit 2"
run_belt run --broker redis://127.0.0.1:1 three.json
eq "exit" "$rc" 2 && contains "message" err "127.0.0.1:1" && t_ok

t_begin "URL typos: clear error, exit 2"
bad=""
for u in "rdis://127.0.0.1:$PORT" "redis:/127.0.0.1:$PORT" "redis://127.0.0.1:port" "redis://127.0.0.1:$PORT/x"; do
    run_belt run --broker "$u" three.json
    if [ "$rc" != 2 ] || ! grep -q "broker" err; then
        bad="$bad $u(exit $rc: $(head -c 200 err))"
    fi
done
eq "bad URLs" "$bad" "" && t_ok

t_begin "--broker with options that make no sense remotely: exit 2"
run_belt run --broker "$URL" --dry-run three.json
eq "dry-run still works" "$rc" 0 &&
run_belt run --broker "$URL" --command true &&
eq "quick mode" "$rc" 2 && t_ok

# ---- 6: signed jobs --------------------------------------------------------

t_begin "no key: run and worker refuse to start (exit 2) and say how to get one"
rc1=0; rc2=0
BELT_KEY_FILE= timeout "$LIMIT" "$BELT" run --broker "$URL" -q three.json >out 2>err || rc1=$?
BELT_KEY_FILE= timeout "$LIMIT" "$BELT" worker --broker "$URL" >out 2>err2 || rc2=$?
eq "run exit" "$rc1" 2 && eq "worker exit" "$rc2" 2 &&
contains "run message" err "belt keygen" && contains "worker message" err2 "--insecure" && t_ok

t_begin "bad key files: unreadable, readable by others, not a key: exit 2, clear"
printf '%s\n' "$(sed -n '/^[0-9a-f]\{64\}$/p' "$T/belt.key")" >open.key
chmod 644 open.key
printf 'not a key\n' >junk.key
chmod 600 junk.key
bad=""
for k in "$T/missing.key:cannot read" "open.key:chmod 600" "junk.key:not a key"; do
    f=${k%%:*}; want=${k#*:}
    for cmd in "run --broker $URL -q three.json" "worker --broker $URL"; do
        rc=0
        # shellcheck disable=SC2086
        timeout "$LIMIT" "$BELT" $cmd --key-file "$f" >out 2>err || rc=$?
        if [ "$rc" != 2 ] || ! grep -qF -- "$want" err; then
            bad="$bad [$cmd --key-file $f: exit $rc: $(head -c 200 err)]"
        fi
    done
done
eq "refused" "$bad" "" && t_ok

t_begin "--insecure runs unsigned jobs and warns once (worker and run)"
worker wi --namespace insec --insecure -j 1
run_broker -q --namespace insec --insecure --results ri2.jsonl idle.json
stop_workers wi
eq "exit" "$rc" 0 && once ri2.jsonl 5 &&
eq "run warned once" "$(grep -c 'warning: --insecure' "$T/err")" 1 &&
eq "worker warned once" "$(grep -c 'warning: --insecure' "$T/wi.log")" 1 && t_ok

t_begin "forged jobs (unsigned, wrong key, changed) never run: dead-lettered with the reason"
worker wf --namespace forge -j 1
rc_ xadd forge:run:fr:results '*' open 1 >/dev/null
rc_ xadd forge:jobs '*' run fr key f1 job "{\"id\":\"f1\",\"run\":\"touch $T/pwned1\"}" max_deliveries 3 >/dev/null
rc_ xadd forge:jobs '*' run fr key f2 job "{\"id\":\"f2\",\"run\":\"touch $T/pwned2\"}" max_deliveries 3 sig "0badc0de.$(printf '%064d' 0)" >/dev/null
dead3() { [ "$(rc_ xlen forge:dead)" -ge 2 ]; }
if wait_for dead3; then
    sleep 0.3 # nothing else happens meanwhile
    eq "not run" "$(ls "$T" | grep -c pwned)" 0 &&
    eq "dead" "$(rc_ xlen forge:dead)" 2 &&
    contains "reason: unsigned" <(rc_ xrange forge:dead - + ) "refused: not signed" &&
    contains "reason: other key" <(rc_ xrange forge:dead - + ) "signed with key 0badc0de" &&
    eq "queue" "$(rc_ xlen forge:jobs)" 0 && t_ok
else
    t_fail "no dead letters (worker log: $(tail -c 300 "$T/wf.log"))"
fi

t_begin "a captured job replayed into another run, or into its finished run, never runs"
write replay.json <<JSON
{"jobs": [{"id": "once", "run": "echo ran >> $T/replayed"}]}
JSON
timeout -s KILL "$LIMIT" "$BELT" run -q --broker "$URL" --namespace forge --results rr.jsonl replay.json >outr 2>errr &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
signed_job() { rc_ xrange forge:jobs - + | grep -q '^once$'; }
# The worker wf is running: stop it first so the job waits to be captured.
stop_workers wf
if wait_for signed_job; then
    # The entry's fields, one per line: name, value, name, value...
    rc_ --no-raw xrange forge:jobs - + >captured.txt
    mapfile -t f < <(rc_ xrange forge:jobs - + | tail -n +2)
    worker wf2 --namespace forge -j 1
    rc=0; wait $bpid || rc=$?
    stop_workers wf2
    eq "the real run" "$rc" 0 && once rr.jsonl 1 &&
    eq "ran once" "$(lines "$T/replayed")" 1 || true
    worker wf3 --namespace forge -j 1
    # Replay 1: into another live run (its id in the run field changed).
    other=()
    for ((i = 0; i < ${#f[@]}; i += 2)); do
        v=${f[i+1]}
        [ "${f[i]}" = run ] && v=other-run
        other+=("${f[i]}" "$v")
    done
    rc_ xadd forge:run:other-run:results '*' open 1 >/dev/null
    rc_ xadd forge:jobs '*' "${other[@]}" >/dev/null
    # Replay 2: the same entry again, into its own (finished) run.
    rc_ xadd forge:jobs '*' "${f[@]}" >/dev/null
    gone() { [ "$(rc_ xlen forge:jobs)" = 0 ]; }
    wait_for gone
    sleep 0.3
    stop_workers wf3
    eq "queue" "$(rc_ xlen forge:jobs)" 0 &&
    eq "ran still once" "$(lines "$T/replayed")" 1 &&
    contains "another run: bad signature" <(rc_ xrange forge:dead - + ) "bad signature" &&
    contains "finished run: skipped" "$T/wf3.log" "the run is over" && t_ok
else
    t_fail "the job was never queued"
fi

t_begin "no live worker: the run says so after a few seconds and waits; a forged result is refused (the job fails)"
timeout -s KILL "$LIMIT" "$BELT" run --broker "$URL" --namespace lone --results rl.jsonl replay.json >outl 2>errl &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
said() { grep -q "no worker has a heartbeat" errl; }
if wait_for said; then
    run=$(rc_ hkeys lone:runs | head -n 1)
    rc_ xadd "lone:run:$run:results" '*' key once meta "1 ok 0 0 1 0 0 0 0 0" result '{"id":"once","status":"ok","forged":true}' >/dev/null
    said_refused() { grep -q "refused a result entry" errl; }
    wait_for said_refused
    worker wl --namespace lone -j 1
    rc=0; wait $bpid || rc=$?
    stop_workers wl
    eq "exit" "$rc" 1 && eq "lines" "$(lines rl.jsonl)" 1 &&
    eq "not the forged one" "$(jqr '.[0].forged' rl.jsonl)" null &&
    eq "refused" "$(jqr '.[0].error | test("result was refused: not signed")' rl.jsonl)" true &&
    contains "refusal said" errl "not signed" &&
    contains "worker up said" errl "worker up" && t_ok
else
    t_fail "nothing said: $(head -c 300 errl)"
fi

t_begin "a worker with another key refuses; the run ends with the reason (exit 1)"
"$BELT" keygen "$T/other.key" >/dev/null
worker wo --namespace okey -j 1 --key-file "$T/other.key"
run_broker -q --namespace okey --results ro.jsonl replay.json
stop_workers wo
eq "exit" "$rc" 1 && eq "status" "$(jqr '.[0].status' ro.jsonl)" error &&
eq "reason" "$(jqr '.[0].error | test("refused by worker .*not in this key file")' ro.jsonl)" true &&
eq "dead" "$(rc_ xlen okey:dead)" 1 && t_ok

t_begin "a key changed in three steps (--add, --promote, --retire) with no job refused"
cp "$T/belt.key" rot.key && cp rot.key k0.key
"$BELT" keygen --add rot.key >/dev/null && cp rot.key k1.key
"$BELT" keygen --promote rot.key >/dev/null && cp rot.key k2.key
"$BELT" keygen --retire rot.key >/dev/null && cp rot.key k3.key
bad=""
# Between two steps, every pair of machines: the submitter's file, the worker's.
for pair in k0:k1 k1:k0 k1:k2 k2:k1 k2:k3 k3:k2; do
    worker wr --namespace rot -j 2 --key-file "${pair#*:}.key"
    run_broker -q --namespace rot --key-file "${pair%%:*}.key" --results rot.jsonl three.json
    stop_workers wr
    if [ "$rc" != 0 ] || [ "$(jqr 'map(select(.status == "ok")) | length' rot.jsonl)" != 31 ]; then
        bad="$bad $pair(exit $rc)"
    fi
done
eq "every step" "$bad" "" && eq "mode" "$(stat -c %a rot.key)" 600 &&
eq "keys at each step" "$(grep -c '^[0-9a-f]\{64\}$' k0.key k1.key k2.key k3.key | cut -d: -f2 | tr '\n' ' ')" "1 2 2 1 " &&
eq "the new key signs after --promote" "$(grep -m1 '^[0-9a-f]\{64\}$' k2.key)" "$(grep '^[0-9a-f]\{64\}$' k1.key | tail -n 1)" && t_ok

t_begin "a result signed with a key the submitter does not hold is refused: the job ends as an error"
worker wx --namespace xkey -j 1 --key-file k2.key
run_broker -q --namespace xkey --key-file k0.key --results rx.jsonl replay.json
stop_workers wx
eq "exit" "$rc" 1 && eq "status" "$(jqr '.[0].status' rx.jsonl)" error &&
eq "reason" "$(jqr '.[0].error | test("result was refused: signed with key")' rx.jsonl)" true && t_ok

# ---- 7: clean-up, status, resume, memory ----------------------------------

t_begin "status counts what is queued: waiting and in flight"
write four.json <<'JSON'
{"jobs": [{"id": "w{i}", "run": "sleep 30", "matrix": {"i": [1, 2, 3, 4, 5, 6]}}]}
JSON
timeout -s KILL "$LIMIT" "$BELT" run -q --broker "$URL" --namespace stat --results rs.jsonl four.json >outs 2>errs &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
worker ws --namespace stat -j 2 --prefetch 0
two_running() { [ "$(timeout 10 "$BELT" status --broker "$URL" --namespace stat --json | jq .queue.pending)" = 2 ]; }
if wait_for two_running; then
    timeout "$LIMIT" "$BELT" status --broker "$URL" --namespace stat --json >sts.json
    eq "waiting" "$(jq .queue.waiting sts.json)" 4 &&
    eq "in flight" "$(jq '.in_flight | map(.count) | add' sts.json)" 2 &&
    eq "length" "$(jq .queue.length sts.json)" 6 && t_ok
else
    t_fail "never two running: $(timeout 10 "$BELT" status --broker "$URL" --namespace stat --json)"
fi
kill -INT $bpid; wait $bpid 2>/dev/null
# Twice: the second signal kills the running jobs instead of waiting.
kill -TERM "$(cat "$T/ws.pid")"; sleep 0.2; kill -TERM "$(cat "$T/ws.pid")"
wait "$(cat "$T/ws.pid")" 2>/dev/null

t_begin "a crashed run's result stream gets a TTL; a killed submitter's run is continued by --resume"
write cont.json <<JSON
{"jobs": [{"id": "c{i}", "run": "echo {i} >> $T/cont.ran; sleep 0.1", "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}}]}
JSON
worker wk1 --namespace cont -j 1 --prefetch 0
# Not under timeout: the SIGKILL is for belt itself.
"$BELT" run -q --broker "$URL" --namespace cont --results rc.jsonl cont.json >outc 2>errc &
bpid=$!
t_bg_pids="$t_bg_pids $bpid"
if wait_for at_least rc.jsonl 3; then
    exec 3>&2 2>/dev/null
    kill -KILL $bpid; wait $bpid
    exec 2>&3 3>&-
    run=$(rc_ hkeys cont:runs | head -n 1)
    ttl=$(rc_ ttl "cont:run:$run:results")
    rc=0
    timeout -s KILL "$LIMIT" "$BELT" run --broker "$URL" --namespace cont --resume rc.jsonl --results rc.jsonl cont.json >outc2 2>errc2 || rc=$?
    stop_workers wk1
    cat errc2 >&2
    eq "ttl" "$([ "$ttl" -gt 3600 ] && [ "$ttl" -le 86400 ] && echo set)" set &&
    eq "exit" "$rc" 0 && contains "continued" errc2 "continuing run $run" &&
    once rc.jsonl 20 &&
    eq "each ran once" "$(sort "$T/cont.ran" | uniq -d | wc -l)" 0 &&
    eq "result stream gone" "$(rc_ exists "cont:run:$run:results")" 0 &&
    eq "run done" "$(rc_ hget cont:runs "$run" | jq -r .state)" done && t_ok
else
    t_fail "no results came"
fi

t_begin "Redis' memory stays bounded on a long run: streams trimmed as results are written"
MPORT=$(free_port)
mpid_main=$rpid
redis_start "$T/redis-mem" "$MPORT" --appendonly no
mempid=$rpid
n_mem=100000
[ -n "${TSAN_OPTIONS:-}${ASAN_OPTIONS:-}" ] && n_mem=20000
printf '{"jobs":[{"id":"m-{a}-{b}","kind":"noop","matrix":{"a":[%s],"b":[%s]}}]}\n' \
    "$(seq -s, 0 999)" "$(seq -s, 0 $((n_mem / 1000 - 1)))" >mem.json
base=$(redis-cli -p "$MPORT" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
MURL="redis://127.0.0.1:$MPORT"
"$BELT" worker -q --broker "$MURL" -j 2 >"$T/wm1.log" 2>&1 &
wm1=$!
"$BELT" worker -q --broker "$MURL" -j 2 >"$T/wm2.log" 2>&1 &
wm2=$!
t_bg_pids="$t_bg_pids $wm1 $wm2"
rc=0
timeout -s KILL $((LIMIT * 2)) "$BELT" run -q --broker "$MURL" --results rm.jsonl mem.json >outm 2>errm || rc=$?
peak=$(redis-cli -p "$MPORT" info memory | sed -n 's/^used_memory_peak:\([0-9]*\).*/\1/p')
kill -TERM $wm1 $wm2; wait $wm1 $wm2 2>/dev/null
echo "  (memory: $n_mem jobs, used_memory $base before, peak $peak)"
eq "exit" "$rc" 0 && eq "results" "$(lines rm.jsonl)" "$n_mem" &&
eq "bounded (peak - before < 48 MiB)" "$([ $((peak - base)) -lt $((48 * 1048576)) ] && echo yes)" yes &&
eq "streams left" "$(redis-cli -p "$MPORT" --scan --pattern 'belt:run:*' | wc -l)" 0 &&
eq "jobs left" "$(redis-cli -p "$MPORT" xlen belt:jobs)" 0 && t_ok
redis-cli -p "$MPORT" shutdown nosave >/dev/null 2>&1
wait "$mempid" 2>/dev/null
rpid=$mpid_main

t_begin "no belt process of these tests is left behind"
left=$(pgrep -f -- "--broker redis://127.0.0.1:$PORT" || true)
eq "processes left" "$left" "" && t_ok
for p in $left; do kill -KILL "$p" 2>/dev/null; done

# Both servers stop cleanly (lib.sh's trap would SIGKILL them noisily).
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1
REDISCLI_AUTH=s3cret redis-cli -p "$APORT" shutdown nosave >/dev/null 2>&1
wait "$mpid" "$apid" 2>/dev/null
t_done
