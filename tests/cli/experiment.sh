#!/bin/sh
# experiment.sh: `belt experiment`: the shipped configs run (simulated, with
# few jobs) and write CSV/JSON with the documented columns, one row per
# sweep point, and plots when gnuplot is there; the same seed gives the same
# results.csv; bad input exits 2 with one clear message and runs nothing;
# and a live run of sleep jobs agrees with the simulation of the same jobs.
. "$(dirname "$0")/lib.sh"

EXP="$srcdir/configs/experiments"
COLS="policy workers load sojourn_mean sojourn_p50 sojourn_p90 sojourn_p99 sojourn_p999 wait_mean wait_p99 service_p99 utilization throughput makespan jain qlen_mean qlen_max sojourn_mean_ci95"

# sanitized: true when belt was built with ASan or TSan (timings are then
# not the implementation's).
sanitized() {
    local b d
    d=$(dirname "$BELT")
    for b in "$d/.libs/belt" "$d/.libs/lt-belt" "$BELT" "$d/.libs/libbelt.so"; do
        [ -f "$b" ] && grep -qa -e '__tsan_init' -e '__asan_init' "$b" && return 0
    done
    return 1
}

# has_cols CSV: every column of $COLS is in the header.
has_cols() {
    local c head
    head=",$(head -n 1 "$1"),"
    for c in $COLS; do
        case "$head" in
        *",$c,"*) ;;
        *) t_fail "column $c missing from $1"; return 1 ;;
        esac
    done
    return 0
}

# csv_col CSV NAME ROW: the value of column NAME in data row ROW (1-based).
csv_col() {
    awk -F, -v name="$2" -v row="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
        NR == row + 1 { print $c }' "$1"
}

for cfg in policies-vs-load:56 heavy-tail:28 heterogeneous:28; do
    name=${cfg%%:*}
    rows=${cfg##*:}
    t_begin "$name.json runs simulated and writes $rows rows"
    run_belt experiment -q --jobs 2000 --out "o-$name" "$EXP/$name.json"
    eq "exit" "$rc" 0 && has_cols "o-$name/results.csv" &&
    eq "csv rows" "$(($(lines "o-$name/results.csv") - 1))" "$rows" &&
    eq "json points" "$(jq '.points | length' "o-$name/results.json")" "$rows" &&
    eq "per-worker util" "$(jq '.points[0] | (.util | length) == .workers' "o-$name/results.json")" true &&
    eq "mode" "$(csv_col "o-$name/results.csv" mode 1)" simulate &&
    eq "gnuplot scripts" "$(ls "o-$name"/latency.gp "o-$name"/utilization.gp | wc -l | tr -d ' ')" 2 && t_ok

    if command -v gnuplot >/dev/null 2>&1; then
        t_begin "$name.json: plots made with gnuplot"
        ok=1
        for f in latency.svg latency.png utilization.svg utilization.png; do
            [ -s "o-$name/$f" ] || { ok=0; t_fail "no $f"; break; }
        done
        [ $ok = 1 ] && contains "svg" "o-$name/latency.svg" "<svg" && t_ok
    fi
done

t_begin "the summary table lists every point"
run_belt experiment --no-plot --jobs 500 --out o-table "$EXP/heavy-tail.json"
eq "exit" "$rc" 0 && contains "header" out "sojourn" &&
eq "rows" "$(grep -c '^work-stealing ' out)" 4 &&
eq "no plots" "$(ls o-table | grep -c '\.gp$')" 0 && t_ok

write small.json <<'JSON'
{
  "workers": 8,
  "policy": ["random", "power-of-two", "shared"],
  "arrival": {"process": "poisson", "load": [0.5, 0.9]},
  "service": {"dist": "exponential", "mean": "1ms"},
  "jobs": 20000,
  "repeat": 3,
  "seed": 5
}
JSON

t_begin "same config and seed: identical results.csv"
run_belt experiment -q --out s1 small.json
rc1=$rc
run_belt experiment -q --out s2 small.json
eq "exits" "$rc1 $rc" "0 0" && t_expect "results.csv identical" cmp -s s1/results.csv s2/results.csv && t_verdict

t_begin "--seed changes the results"
run_belt experiment small.json -q --seed 6 --out s3   # options after CONFIG, as in the issue
eq "exit" "$rc" 0 && t_expect "results.csv differs" test "$(cat s1/results.csv)" != "$(cat s3/results.csv)" &&
eq "seed column" "$(csv_col s3/results.csv seed 1)" 6 && t_verdict

t_begin "repeats give 95% confidence intervals"
ci=$(csv_col s1/results.csv sojourn_mean_ci95 1)
t_expect "CI half-width present and > 0 (got '$ci')" awk -v x="$ci" 'BEGIN { exit !(x + 0 > 0) }' && t_verdict

t_begin "the simulator matches M/M/1 for random dispatch (20000 jobs x 3, within 15%)"
# Random dispatch over 8 workers: each is M/M/1 at ρ = 0.5, mean sojourn
# E[S]/(1-ρ) = 2ms.  20000 jobs make ~2500 per worker: the mean of 3 runs
# is within a few percent; 15% leaves room for any seed.
got=$(csv_col s1/results.csv sojourn_mean 1)
want=$(csv_col s1/results.csv theory_sojourn_mean 1)
t_expect "random at 0.5: $got vs theory $want" awk -v g="$got" -v w="$want" 'BEGIN { d = g / w - 1; exit !(w > 0 && d < 0.15 && d > -0.15) }' && t_verdict

t_begin "without gnuplot: CSV, JSON and scripts, and a clear note"
rc=0
env PATH=/nonexistent "$BELT" experiment -q --jobs 500 --out o-nognu small.json >out 2>err || rc=$?
eq "exit" "$rc" 0 && contains "note" err "gnuplot is not installed" &&
t_expect "csv" test -s o-nognu/results.csv && t_expect "script" test -s o-nognu/latency.gp &&
t_expect "no svg" test ! -e o-nognu/latency.svg && t_verdict

# ---- bad input: exit 2, one message, nothing run -------------------------

# bad NAME MESSAGE: the config in NAME fails with MESSAGE and no output dir.
bad() {
    run_belt experiment --out "o-$1" "$1"
    eq "exit" "$rc" 2 && contains "message" err "$2" &&
    eq "one line" "$(lines err)" 1 &&
    t_expect "nothing written" test ! -e "o-$1"
}

write w0.json <<'JSON'
{"workers": 0, "arrival": {"load": 0.5}, "service": {"dist": "exponential", "mean": "1ms"}}
JSON
t_begin "workers 0"
bad w0.json "w0.json:1:13: workers: must be at least 1" && t_verdict

write pol.json <<'JSON'
{"workers": 4, "policy": ["random", "work-steeling"],
 "arrival": {"load": 0.5}, "service": {"dist": "exponential", "mean": "1ms"}}
JSON
t_begin "unknown policy, with did-you-mean"
bad pol.json 'pol.json:1:37: policy[1]: unknown policy "work-steeling" (did you mean "work-stealing"?)' && t_verdict

write over.json <<'JSON'
{"workers": 4,
 "arrival": {"process": "poisson", "load": [0.5, 1.1]},
 "service": {"dist": "exponential", "mean": "1ms"}}
JSON
t_begin "open-loop load >= 1 without a cap"
bad over.json "over.json:2:50: arrival.load[1]: load 1.1 >= 1: the queue grows without bound" && t_verdict

t_begin "load >= 1 capped by --jobs: a warning, and it runs"
run_belt experiment -q --no-plot --jobs 300 --out o-over over.json
eq "exit" "$rc" 0 && contains "warning" err "grows without bound" &&
eq "rows" "$(($(lines o-over/results.csv) - 1))" 2 && t_ok

write dist.json <<'JSON'
{"workers": 4, "arrival": {"load": 0.5},
 "service": {"dist": "pareto", "alpha": -1, "min": "1ms", "max": "1s"}}
JSON
t_begin "invalid distribution parameter"
bad dist.json "dist.json:2:" && contains "names alpha" err "alpha" && t_verdict

printf '0,0.001\n0.001,0.002\n0.002;0.001\n' >"$T/trace.csv"
write tr.json <<'JSON'
{"workers": 2, "arrival": {"process": "trace", "file": "trace.csv"}}
JSON
t_begin "malformed trace line: its line number"
bad tr.json "trace.csv:3:" && t_verdict

write unk.json <<'JSON'
{"workers": 4, "arival": {"load": 0.5}, "service": {"dist": "exponential", "mean": "1ms"}}
JSON
t_begin "unknown key, with did-you-mean"
bad unk.json 'unknown key "arival" (did you mean "arrival"?)' && t_verdict

t_begin "usage errors exit 2"
run_belt experiment --mode fast small.json
rc1=$rc
run_belt experiment
eq "exits" "$rc1 $rc" "2 2" && t_ok

t_begin "trace replay runs (simulated)"
printf 'arrival,service\n0,0.001\n0.0005,0.002\n0.001,0.001\n0.004,0.001\n' >"$T/good.csv"
write trok.json <<'JSON'
{"workers": 2, "policy": ["shared", "random"], "arrival": {"process": "trace", "file": "good.csv"}}
JSON
run_belt experiment -q --no-plot --out o-trace trok.json
eq "exit" "$rc" 0 && eq "jobs" "$(csv_col o-trace/results.csv jobs_done 1)" 4 && t_ok

# ---- live against simulated --------------------------------------------------

write live.json <<'JSON'
{
  "workers": 4,
  "policy": ["shared", "random"],
  "arrival": {"process": "poisson", "load": 0.5},
  "service": {"dist": "exponential", "mean": "20ms"},
  "jobs": 300,
  "seed": 3
}
JSON

# live_vs_sim: runs live.json both ways; true when both policies' mean
# sojourn times agree within 10%.  Both runs see the same jobs (live mode
# draws them from the simulator's streams), so the gap is belt's overhead
# (reported: timer lateness of submits, sleep overrun), not sampling noise.
live_vs_sim() {
    local row l s late over
    run_belt experiment -q --no-plot --mode live --out o-live live.json
    [ "$rc" = 0 ] || { echo "# live run failed: $(cat err)"; return 1; }
    run_belt experiment -q --no-plot --mode simulate --out o-sim live.json
    [ "$rc" = 0 ] || { echo "# simulated run failed: $(cat err)"; return 1; }
    for row in 1 2; do
        l=$(csv_col o-live/results.csv sojourn_mean $row)
        s=$(csv_col o-sim/results.csv sojourn_mean $row)
        late=$(csv_col o-live/results.csv live_submit_late $row)
        over=$(csv_col o-live/results.csv live_service_overrun $row)
        echo "# $(csv_col o-live/results.csv policy $row): live $l s, simulated $s s; overhead per job: submit late $late s, service overrun $over s"
        # A machine that wakes threads more than 0.5ms late on average
        # (belt's own overhead is ~0.1ms per job on an idle machine) is
        # too busy to measure belt on: other work owns the CPUs.  Status 2.
        if awk -v a="$late" -v b="$over" 'BEGIN { exit !(a > 0.0005 || b > 0.0005) }'; then
            return 2
        fi
        awk -v l="$l" -v s="$s" 'BEGIN { d = l / s - 1; exit !(s > 0 && d < 0.10 && d > -0.10) }' || return 1
    done
    return 0
}

if sanitized; then
    echo "# skip: live vs simulated agreement (sanitizer build: its timings are the sanitizer's)"
else
    t_begin "live sleep jobs agree with the simulation of the same jobs (mean sojourn within 10%)"
    # The overhead is wake-up latency, which a machine busy with other work
    # inflates: one second try is allowed, and said; when the machine is
    # too busy both times (wake-ups over 0.5ms late), the test is skipped
    # with the numbers, not passed.
    v=0
    live_vs_sim || v=$?
    if [ $v != 0 ]; then
        echo "# outside 10% or machine busy: trying once more"
        v=0
        live_vs_sim || v=$?
    fi
    case $v in
    0) t_ok ;;
    2) echo "# skip: the machine is too busy to time live runs (see the overhead above)"
       t_open=0 ;;
    *) t_fail "live and simulated mean sojourn differ by more than 10% twice" ;;
    esac
fi

t_begin "live mode runs a command per job"
write cmd.json <<'JSON'
{"workers": 2, "arrival": {"process": "batch"}, "jobs": 4,
 "service": {"dist": "constant", "value": "10ms"},
 "command": "sleep {service}"}
JSON
run_belt experiment -q --no-plot --mode live --out o-cmd cmd.json
eq "exit" "$rc" 0 && eq "jobs" "$(csv_col o-cmd/results.csv jobs_done 1)" 4 &&
t_expect "service >= 10ms" awk -v x="$(csv_col o-cmd/results.csv service_mean 1)" 'BEGIN { exit !(x >= 0.01) }' && t_verdict

t_begin "live mode: failing commands are reported"
write fail.json <<'JSON'
{"workers": 2, "arrival": {"process": "batch"}, "jobs": 3,
 "service": {"dist": "constant", "value": "1ms"}, "command": "exit 3"}
JSON
run_belt experiment -q --no-plot --mode live --out o-fail fail.json
eq "exit" "$rc" 0 && contains "warning" err "3 live jobs did not succeed" && t_ok

t_done
