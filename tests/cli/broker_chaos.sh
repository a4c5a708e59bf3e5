#!/bin/sh
# broker_chaos.sh: exactly-once results through the Redis broker while
# everything around it dies.  Against a real redis-server on loopback with
# AOF and appendfsync always:
#
#   - N short jobs (20,000; 2,000 under ThreadSanitizer or ASan, whose
#     builds are ten times slower; CHAOS_JOBS overrides), each a shell that
#     appends its id to ran.log, on 4 workers (2 slots each);
#   - every 300 ms a random worker is killed with SIGKILL and restarted;
#   - Redis is killed with SIGKILL and restarted twice (at 25% and 60% of
#     the results);
#   - the submitter is killed with SIGKILL once (at 40%), and `belt run
#     --broker --resume` continues its run.
#
# The 300 ms cadence is the test's own load (a loop with sleep here); belt
# itself never polls.  Checks: every job id exactly once in the results,
# with status ok; no job ran more times than the delivery number of its
# result says; nothing left in the job stream or pending, no result stream
# left; no worker and no job process left behind.  Prints jobs, kills,
# redeliveries, duplicates suppressed and the time taken.  Must finish in
# under 3 minutes (CHAOS_BUDGET seconds, default 170, bounds the run).
. "$(dirname "$0")/lib.sh"

. "$srcdir/tests/cli/broker_lib.sh"
need_redis

N=${CHAOS_JOBS:-20000}
VIS=2s
if [ -n "${TSAN_OPTIONS:-}${ASAN_OPTIONS:-}" ]; then
    N=${CHAOS_JOBS:-2000}
    VIS=3s
fi
BUDGET=${CHAOS_BUDGET:-170}
WORKERS=4

"$BELT" keygen "$T/belt.key" >/dev/null || exit 99
export BELT_KEY_FILE="$T/belt.key"
PORT=$(free_port)
URL="redis://127.0.0.1:$PORT"
if ! redis_start "$T/redis" "$PORT"; then
    echo "broker_chaos.sh: redis-server did not start on port $PORT" >&2
    exit 99
fi

a=$((N / 100))
[ "$a" -ge 1 ] || a=1
b=$(( (N + a - 1) / a ))
printf '{"jobs":[{"id":"c-{a}-{b}","run":"echo c-{a}-{b} >> %s/ran.log","matrix":{"a":[%s],"b":[%s]}}]}\n' \
    "$T" "$(seq -s, 0 $((a - 1)))" "$(seq -s, 0 $((b - 1)))" >chaos.json
N=$((a * b))

# The shell's "Killed" notices for the processes killed on purpose are not
# wanted: they go to the null device for the whole chaos.
exec 3>&2 2>/dev/null

start_worker() { # start_worker I
    worker "w$1" -q --visibility "$VIS" -j 2
}
for i in $(seq 1 $WORKERS); do
    start_worker "$i"
done

t0=$SECONDS
"$BELT" run --broker "$URL" --max-deliveries 1000 --results r.jsonl chaos.json >sub1.out 2>sub1.err &
sub=$!
t_bg_pids="$t_bg_pids $sub"
kills=0 redis_kills=0 sub_kills=0 over=0
while kill -0 "$sub" 2>/dev/null; do
    if [ $((SECONDS - t0)) -gt "$BUDGET" ]; then
        over=1
        break
    fi
    sleep 0.3
    i=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % WORKERS + 1 ))
    p=$(cat "$T/w$i.pid")
    kill -KILL "$p"
    wait "$p"
    start_worker "$i"
    kills=$((kills + 1))
    done_n=$(lines r.jsonl 2>/dev/null || echo 0)
    if { [ $redis_kills -eq 0 ] && [ "$done_n" -ge $((N / 4)) ]; } ||
       { [ $redis_kills -eq 1 ] && [ "$done_n" -ge $((N * 3 / 5)) ]; }; then
        kill -KILL "$rpid"
        wait "$rpid"
        redis_start "$T/redis" "$PORT" || { over=1; break; }
        redis_kills=$((redis_kills + 1))
    fi
    if [ $sub_kills -eq 0 ] && [ "$done_n" -ge $((N * 2 / 5)) ]; then
        kill -KILL "$sub"
        wait "$sub"
        sub_kills=1
        "$BELT" run --broker "$URL" --max-deliveries 1000 --resume r.jsonl --results r.jsonl chaos.json >sub2.out 2>sub2.err &
        sub=$!
        t_bg_pids="$t_bg_pids $sub"
    fi
done
rc=0
if [ $over = 1 ]; then
    kill -KILL "$sub"
    rc=124
fi
wait "$sub" || rc=$?
took=$((SECONDS - t0))
for i in $(seq 1 $WORKERS); do
    kill -TERM "$(cat "$T/w$i.pid")"
done
for i in $(seq 1 $WORKERS); do
    wait "$(cat "$T/w$i.pid")"
done
exec 2>&3 3>&-

t_begin "the run ends, within the budget, with the submitter's status 0"
eq "budget" "$over" 0 && eq "exit" "$rc" 0 && eq "redis kills" "$redis_kills" 2 &&
eq "submitter kills" "$sub_kills" 1 && contains "resumed" sub2.err "continuing run" && t_ok

t_begin "every job id exactly once in the results, with status ok"
eq "lines" "$(lines r.jsonl)" "$N" &&
eq "distinct ids" "$(jq -r .id r.jsonl | sort -u | wc -l)" "$N" &&
eq "statuses" "$(jq -r .status r.jsonl | sort -u | tr '\n' ' ')" "ok " && t_ok

t_begin "no job ran more times than its deliveries say"
jq -r '[.id, .delivery] | @tsv' r.jsonl | sort >deliveries.tsv
sort "$T/ran.log" | uniq -c | awk '{ print $2 "\t" $1 }' | sort >runs.tsv
over_runs=$(join -t "$(printf '\t')" deliveries.tsv runs.tsv | awk -F'\t' '$3 > $2 { n++ } END { print n + 0 }')
never=$(join -t "$(printf '\t')" -v 1 deliveries.tsv runs.tsv | wc -l)
eq "jobs that ran more often than their delivery number" "$over_runs" 0 &&
eq "ok results of jobs that never ran" "$never" 0 && t_ok

t_begin "nothing left pending or queued, no result stream left"
eq "queued" "$(rc_ xlen belt:jobs)" 0 &&
eq "pending" "$(rc_ xpending belt:jobs workers | head -n 1)" 0 &&
eq "result streams" "$(rc_ --scan --pattern 'belt:run:*' | wc -l)" 0 && t_ok

t_begin "no worker or job process left behind"
none_left() {
    ! pgrep -f -- "--broker redis://127.0.0.1:$PORT" >/dev/null &&
    ! pgrep -f -- "$T/ran.log" >/dev/null
}
if wait_for none_left; then
    t_ok
else
    t_fail "left: $(pgrep -af -- "127.0.0.1:$PORT|$T/ran.log" | head -5)"
fi
for p in $(pgrep -f -- "--broker redis://127.0.0.1:$PORT"); do
    kill -KILL "$p" 2>/dev/null
done

dups=$(cat sub1.err sub2.err | sed -n 's/^belt: \([0-9]*\) duplicate result.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
redeliveries=$(jq -r '.delivery - 1' r.jsonl | awk '{ s += $1 } END { print s + 0 }')
echo "chaos: $N jobs, $kills worker kills, $redis_kills Redis kills, $sub_kills submitter kill, $redeliveries redeliveries, $dups duplicates suppressed, ${took}s"

redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1
wait "$rpid" 2>/dev/null
t_done
