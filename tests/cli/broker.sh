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
#   and `belt status` (text and --json) on what the cases left behind.
#
# Skipped (77) when redis-server is not installed (scripts/deps.sh installs
# it).  The belt programs may be sanitizer builds: timeouts are generous.
. "$(dirname "$0")/lib.sh"

if ! command -v redis-server >/dev/null 2>&1 ||
   ! command -v redis-cli >/dev/null 2>&1; then
    echo "broker.sh: redis-server/redis-cli not installed (apt-get install redis-server redis-tools); skipping"
    echo "0 passed, 0 failed"
    exit 77
fi

LIMIT=90 # seconds for any one belt command (sanitizer builds are slow)

# free_port: prints a TCP port nobody listens on now (python3 when there is
# one, else a random one that redis-cli cannot reach).
free_port() {
    if command -v python3 >/dev/null 2>&1 &&
       python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null; then
        return 0
    fi
    local p
    while :; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        if ! redis-cli -p "$p" ping >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
}

# redis_start DIR PORT [ARGS...]: starts redis-server in DIR on 127.0.0.1:PORT
# with AOF (appendfsync always), pid in $rpid; waits until it answers.
redis_start() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' \
        --appendonly yes --appendfsync always --daemonize no \
        --logfile "$dir/redis.log" "$@" &
    rpid=$!
    t_bg_pids="$t_bg_pids $rpid"
    wait_for redis_up "$port" "$@"
}

# redis_up PORT [ARGS]: true when the server answers (with --requirepass
# in ARGS, an auth error counts as an answer).
redis_up() {
    local out
    out=$(redis-cli -p "$1" ping 2>&1) || return 1
    case "$out" in PONG|*NOAUTH*|*"Authentication required"*) return 0 ;; esac
    return 1
}

# rc_ CMD...: redis-cli on the main server.
rc_() {
    redis-cli -p "$PORT" "$@"
}

# worker NAME ARGS...: starts `belt worker` in the background, pid in
# $T/NAME.pid, output in $T/NAME.log.
worker() {
    local name=$1
    shift
    timeout -s KILL $((LIMIT + 30)) "$BELT" worker --broker "$URL" "$@" >"$T/$name.log" 2>&1 &
    echo $! >"$T/$name.pid"
    t_bg_pids="$t_bg_pids $!"
}

# stop_workers NAME...: SIGTERM, then waits for them (bounded by the
# timeout wrapping each).
stop_workers() {
    local n p
    for n in "$@"; do
        p=$(cat "$T/$n.pid")
        kill -TERM "$p" 2>/dev/null
    done
    for n in "$@"; do
        p=$(cat "$T/$n.pid")
        # The wrapper is `timeout`: TERM reaches it, it passes TERM on.
        wait "$p" 2>/dev/null
    done
}

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
    eq "run state" "$(rc_ hvals idle:runs | jq -r .state)" canceled && t_ok
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

# Both servers stop cleanly (lib.sh's trap would SIGKILL them noisily).
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1
REDISCLI_AUTH=s3cret redis-cli -p "$APORT" shutdown nosave >/dev/null 2>&1
wait "$mpid" "$apid" 2>/dev/null
t_done
