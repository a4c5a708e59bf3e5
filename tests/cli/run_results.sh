#!/bin/sh
# run_results.sh: `belt run CONFIG` end to end: exit status, one result line
# per job with the documented keys, statuses for ok / failed / timeout /
# error / skipped, signals, retries, floods of output, the job log.
. "$(dirname "$0")/lib.sh"

write basic.json <<'JSON'
{
  "workers": 3,
  "jobs": [
    {"id": "hello", "run": "echo hello; echo oops >&2"},
    {"id": "sq-{n}", "run": "echo $(({n} * {n}))", "matrix": {"n": [1, 2, 3]}},
    {"id": "nap", "kind": "sleep", "duration": "50ms"},
    {"id": "nothing", "kind": "noop"},
    {"id": "argv", "argv": ["printf", "%s|", "a b", "$HOME", "'q'"]},
    {"id": "after-all", "run": "echo done", "after": ["sq-*", "nap"]}
  ]
}
JSON

t_begin "all ok: exit 0, one line per job"
run_belt run -q basic.json
eq "exit" "$rc" 0 && eq "lines" "$(lines belt-results.jsonl)" 8 &&
eq "all ok" "$(jqr '[.[] | select(.status == "ok")] | length' belt-results.jsonl)" 8 &&
eq "stderr quiet" "$(cat err)" "" && t_ok

t_begin "every line has the documented keys"
missing=$(jqr '[.[] | (["id","seq","status","exit_code","signal","attempts","worker","queued","started","ended","duration_ms","stdout","stderr","error","attempt_log"] - keys)[]] | unique | join(",")' belt-results.jsonl)
eq "missing keys" "$missing" "" && t_ok

t_begin "captured stdout and stderr, exit code, attempts, worker"
got=$(jqr '.[] | select(.id == "hello") | [.stdout, .stderr, .exit_code, .attempts, (.worker >= 0 and .worker < 3), .signal, .error] | @json' belt-results.jsonl)
eq "hello" "$got" '["hello\n","oops\n",0,1,true,null,null]' && t_ok

t_begin "matrix expanded and substituted"
eq "squares" "$(jqr '[.[] | select(.id | startswith("sq-")) | .stdout] | sort | join("")' belt-results.jsonl)" "$(printf '1\n4\n9\n')" && t_ok

t_begin "argv runs without a shell"
eq "argv" "$(jqr '.[] | select(.id == "argv") | .stdout' belt-results.jsonl)" "a b|\$HOME|'q'|" && t_ok

t_begin "dependency ran after its dependencies ended"
ok=$(jqr '(map(select(.id == "after-all"))[0].started) as $s | [.[] | select(.id | test("^(sq-|nap)")) | .ended <= $s] | all' belt-results.jsonl)
eq "ordering" "$ok" true && t_ok

t_begin "times are ISO 8601 UTC with milliseconds, durations in ms"
bad=$(jqr '[.[] | select(.attempts > 0) | select((.started | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$") | not) or (.duration_ms | type) != "number")] | length' belt-results.jsonl)
nap=$(jqr '.[] | select(.id == "nap") | .duration_ms >= 45' belt-results.jsonl)
eq "bad times" "$bad" 0 && eq "nap >= 45ms" "$nap" true && t_ok

t_begin "summary on stderr without --quiet"
run_belt run basic.json
eq "exit" "$rc" 0 && contains "summary" err "8 jobs in" && contains "p50" err "p50" &&
contains "busy" err "worker busy" &&
eq "no progress line when stderr is not a terminal" "$(tr -cd '\r' <err | wc -c | tr -d ' ')" 0 && t_ok

t_begin "progress line on a terminal"
if command -v script >/dev/null 2>&1; then
    script -qec "'$BELT' run -j 2 --results tty.jsonl basic.json" /dev/null >tty.out 2>&1; rc=$?
    eq "exit" "$rc" 0 && contains "progress" tty.out "/8 done" &&
    contains "redrawn in place" tty.out "$(printf '\r')" && contains "summary" tty.out "8 jobs in" && t_ok
else
    echo "(no script(1): skipped)"; t_ok
fi

t_begin "--quiet on a terminal: nothing on stderr"
if command -v script >/dev/null 2>&1; then
    script -qec "'$BELT' run -q -j 2 --results tty.jsonl basic.json" /dev/null >tty.out 2>&1; rc=$?
    eq "exit" "$rc" 0 && eq "output" "$(cat tty.out)" "" && t_ok
else
    t_ok
fi

write mixed.json <<'JSON'
{
  "workers": 4,
  "defaults": {"timeout": "5s"},
  "jobs": [
    {"id": "good", "run": "true"},
    {"id": "bad", "run": "echo failing; exit 3"},
    {"id": "slow", "run": "sleep 10", "timeout": "300ms"},
    {"id": "nocmd", "argv": ["/nonexistent/program-xyz"]},
    {"id": "nocmd-sh", "run": "no-such-command-xyz"},
    {"id": "killed", "run": "kill -9 $$"},
    {"id": "flood", "run": "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo end"},
    {"id": "child-left", "run": "sleep 30 & echo started"},
    {"id": "dep-on-bad", "run": "echo never", "after": ["bad"]},
    {"id": "dep-chain", "run": "echo never", "after": ["dep-on-bad"]},
    {"id": "flaky", "run": "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 2 ]", "retries": 3, "retry_delay": "10ms"}
  ]
}
JSON

t_begin "failures: exit 1, every job still has its line"
start=$(date +%s)
run_belt run -q --results r.jsonl --joblog jl.txt mixed.json
took=$(( $(date +%s) - start ))
eq "exit" "$rc" 1 && eq "lines" "$(lines r.jsonl)" 11 && t_ok

st() { jqr ".[] | select(.id == \"$1\") | $2" r.jsonl; }

t_begin "non-zero exit is failed with its exit code"
eq "bad" "$(st bad '[.status, .exit_code, .stdout] | @json')" '["failed",3,"failing\n"]' && t_ok

t_begin "timeout kills the job and says timeout"
eq "slow" "$(st slow '[.status, .exit_code, .signal != null, (.error | test("timed out"))] | @json')" '["timeout",null,true,true]' &&
eq "did not wait" "$([ "$took" -lt 8 ] && echo yes)" yes && t_ok

t_begin "missing executable is an error result"
eq "nocmd" "$(st nocmd '.status')" error && contains "message" r.jsonl "nonexistent" && t_ok

t_begin "missing command through the shell fails with 127"
eq "nocmd-sh" "$(st nocmd-sh '[.status, .exit_code] | @json')" '["failed",127]' && t_ok

t_begin "job killed by a signal: failed, signal 9, no exit code"
eq "killed" "$(st killed '[.status, .exit_code, .signal] | @json')" '["failed",null,9]' && t_ok

t_begin "flooding stdout is truncated at 1 MiB and the job goes on"
eq "flood" "$(st flood '[.status, .stdout_truncated, (.stdout | length) <= 1048576] | @json')" '["ok",true,true]' && t_ok

t_begin "a job that leaves a child behind ends"
eq "child-left" "$(st child-left '[.status, .stdout] | @json')" '["ok","started\n"]' && t_ok

t_begin "dependents of a failed job are skipped with the reason"
eq "dep" "$(st dep-on-bad '[.status, .attempts, .worker, (.error | contains("bad"))] | @json')" '["skipped",0,null,true]' &&
eq "chain" "$(st dep-chain .status)" skipped && t_ok

t_begin "retries: every attempt is in attempt_log"
eq "flaky" "$(st flaky '[.status, .attempts, (.attempt_log | map(.status) | join(","))] | @json')" '["ok",3,"failed,failed,ok"]' && t_ok

t_begin "job log has GNU parallel's format"
hdr=$(head -n 1 jl.txt | tr '\t' '|')
eq "header" "$hdr" "Seq|Host|Starttime|JobRuntime|Send|Receive|Exitval|Signal|Command" &&
eq "lines (jobs that ran)" "$(tail -n +2 jl.txt | wc -l | tr -d ' ')" 9 &&
eq "bad line" "$(awk -F'\t' '$9 == "echo failing; exit 3" {print $1, $2, $5, $6, $7, $8}' jl.txt)" "2 : 0 8 3 0" &&
eq "killed line (Exitval 0, as parallel's \$? >> 8)" "$(awk -F'\t' '$9 == "kill -9 $$" {print $7, $8}' jl.txt)" "0 9" &&
eq "field format" "$(awk -F'\t' 'NR > 1 && !($3 ~ /^[0-9]+\.[0-9][0-9][0-9]$/ && $4 ~ /^ *[0-9]+\.[0-9][0-9][0-9]$/ && length($4) >= 10) {n++} END {print n+0}' jl.txt)" 0 && t_ok

t_begin "results to stdout with --results -"
run_belt run -q --results - basic.json
eq "exit" "$rc" 0 && eq "stdout lines" "$(lines out)" 8 &&
eq "parses" "$(jqr 'length' out)" 8 && t_ok

t_begin "config's results key names the default results file"
write withresults.json <<'JSON'
{"results": "from-config.jsonl", "jobs": [{"id": "a", "kind": "noop"}]}
JSON
run_belt run -q withresults.json
eq "exit" "$rc" 0 && eq "file" "$(jqr '.[0].id' from-config.jsonl 2>/dev/null)" a && t_ok

t_begin "output that is not UTF-8 still gives valid JSON"
write bytes.json <<'JSON'
{"jobs": [{"id": "bytes", "run": "printf 'a\\377b\\000c'"}]}
JSON
run_belt run -q --results b.jsonl bytes.json
eq "exit" "$rc" 0 && eq "stdout" "$(jqr '.[0].stdout | explode | map(tostring) | join(",")' b.jsonl)" "97,65533,98,0,99" && t_ok

t_begin "shipped configs are valid"
run_belt validate "$srcdir"/configs/quickstart.json "$srcdir"/configs/examples/*.json
eq "exit" "$rc" 0 && eq "all ok" "$(grep -c ': ok (' out)" "$(ls "$srcdir"/configs/examples/*.json | wc -l | awk '{print $1 + 1}')" && t_ok

t_begin "quickstart: a matrix, dependencies, a failure, a timeout, a retry"
run_belt run -q --results qs.jsonl "$srcdir/configs/quickstart.json"
eq "exit" "$rc" 1 &&
eq "statuses" "$(jqr 'map(.status) | group_by(.) | map("\(.[0])=\(length)") | join(",")' qs.jsonl)" "failed=1,ok=15,skipped=1,timeout=1" &&
eq "retried" "$(jqr '.[] | select(.id == "flaky") | .attempts' qs.jsonl)" 3 && t_ok

t_done
