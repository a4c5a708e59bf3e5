#!/bin/sh
# run_options.sh: the options of `belt run`: --dry-run, --resume,
# --keep-order, --halt-on-error, --timeout/--retries overrides, -j forms,
# --policy, --help and usage errors.
. "$(dirname "$0")/lib.sh"

write m.json <<'JSON'
{
  "jobs": [
    {"id": "w-{a}-{b}", "run": "echo {a}{b}", "matrix": {"a": [1, 2], "b": ["x", "y"]}},
    {"id": "last", "argv": ["echo", "last"], "after": ["w-*"], "timeout": "10s"}
  ]
}
JSON

t_begin "--dry-run prints the expanded jobs and runs nothing"
run_belt run --dry-run m.json
eq "exit" "$rc" 0 && eq "lines" "$(lines out)" 5 &&
eq "ids in order" "$(jqr 'map(.id) | join(" ")' out)" "w-1-x w-1-y w-2-x w-2-y last" &&
eq "substituted" "$(jqr '.[3].run' out)" "echo 2y" &&
eq "seq" "$(jqr 'map(.seq) | join(",")' out)" "0,1,2,3,4" &&
eq "no results file" "$([ -e belt-results.jsonl ] && echo yes || echo no)" no && t_ok

t_begin "--dry-run shows --timeout/--retries overrides"
run_belt run --dry-run --timeout 2s --retries 4 m.json
eq "exit" "$rc" 0 && eq "overrides" "$(jqr 'map("\(.timeout_ms) \(.retries)") | unique | join(",")' out)" "2000 4" && t_ok

# Make the early jobs the slow ones: seq 0 sleeps longest.
write order.json <<'JSON'
{
  "workers": 4,
  "jobs": [
    {"id": "a", "kind": "sleep", "duration": "300ms"},
    {"id": "b", "kind": "sleep", "duration": "200ms"},
    {"id": "c", "kind": "sleep", "duration": "100ms"},
    {"id": "d", "kind": "noop"},
    {"id": "e", "kind": "noop"}
  ]
}
JSON

t_begin "results come in completion order by default"
run_belt run -q order.json
eq "exit" "$rc" 0 && eq "first line" "$(jqr '.[0].id' belt-results.jsonl)" d && t_ok

t_begin "--keep-order writes results in config order"
run_belt run -q -k order.json
eq "exit" "$rc" 0 && eq "order" "$(jqr 'map(.id) | join("")' belt-results.jsonl)" abcde && t_ok

write resume.json <<'JSON'
{
  "jobs": [
    {"id": "one", "run": "echo one >> ran.txt"},
    {"id": "two", "run": "echo two >> ran.txt; test -e fixed"},
    {"id": "three", "run": "echo three >> ran.txt", "after": ["two"]}
  ]
}
JSON

t_begin "--resume: first run fails in the middle"
rm -f ran.txt
run_belt run -q --results res.jsonl resume.json
eq "exit" "$rc" 1 && eq "statuses" "$(jqr 'sort_by(.seq) | map(.status) | join(",")' res.jsonl)" "ok,failed,skipped" && t_ok

t_begin "--resume into the same file: only what did not succeed runs again"
rm -f ran.txt; touch fixed
run_belt run -q --resume res.jsonl --results res.jsonl resume.json
eq "exit" "$rc" 0 && eq "ran" "$(cat ran.txt | tr '\n' ' ')" "two three " &&
eq "appended" "$(lines res.jsonl)" 5 && t_ok

t_begin "--resume again: nothing left to run, exit 0"
rm -f ran.txt
run_belt run -q --resume res.jsonl --results res2.jsonl resume.json
eq "exit" "$rc" 0 && eq "ran nothing" "$([ -e ran.txt ] && echo yes || echo no)" no &&
eq "reported" "$(jqr 'map(.status) | unique | join(",")' res2.jsonl)" skipped &&
eq "reason" "$(jqr '.[0].error | startswith("already ok in")' res2.jsonl)" true && t_ok

t_begin "--resume from a missing file runs everything"
rm -f ran.txt
run_belt run -q --resume nosuch.jsonl --results res3.jsonl resume.json
eq "exit" "$rc" 0 && eq "ran" "$(lines ran.txt)" 3 && t_ok

write halt.json <<'JSON'
{
  "workers": 1,
  "jobs": [
    {"id": "ok1", "run": "true"},
    {"id": "boom", "run": "exit 1"},
    {"id": "later-{i}", "run": "echo x >> later.txt", "matrix": {"i": [1, 2, 3]}}
  ]
}
JSON

t_begin "--halt-on-error starts nothing after a failure"
rm -f later.txt
run_belt run -q --halt-on-error halt.json
eq "exit" "$rc" 1 && eq "nothing later" "$([ -e later.txt ] && echo ran || echo no)" no &&
eq "statuses" "$(jqr 'sort_by(.seq) | map(.status) | join(",")' belt-results.jsonl)" "ok,failed,canceled,canceled,canceled" && t_ok

t_begin "without --halt-on-error the rest runs"
rm -f later.txt
run_belt run -q halt.json
eq "exit" "$rc" 1 && eq "later ran" "$(lines later.txt)" 3 && t_ok

write slow.json <<'JSON'
{"defaults": {"timeout": "30s"}, "jobs": [{"id": "s", "run": "sleep 5"}]}
JSON

t_begin "--timeout overrides the config"
run_belt run -q --timeout 200ms slow.json
eq "exit" "$rc" 1 && eq "status" "$(jqr '.[0].status' belt-results.jsonl)" timeout && t_ok

write retry.json <<'JSON'
{"jobs": [{"id": "r", "run": "exit 1", "retries": 5, "retry_delay": "1ms"}]}
JSON

t_begin "--retries overrides the config"
run_belt run -q --retries 1 retry.json
eq "exit" "$rc" 1 && eq "attempts" "$(jqr '.[0].attempts' belt-results.jsonl)" 2 && t_ok

write workers.json <<'JSON'
{"workers": 2, "jobs": [{"id": "w{i}", "kind": "sleep", "duration": "20ms", "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8]}}]}
JSON

t_begin "workers from the config"
run_belt run -q workers.json
eq "exit" "$rc" 0 && eq "workers used" "$(jqr 'map(.worker) | unique | length' belt-results.jsonl)" 2 && t_ok

t_begin "-j overrides, -j 0 and -j 50% are accepted"
run_belt run -q -j 1 workers.json
ok1=$(jqr 'map(.worker) | unique | length' belt-results.jsonl)
run_belt run -q -j 0 workers.json; r0=$rc
run_belt run -q -j 50% workers.json; r50=$rc
eq "-j 1" "$ok1" 1 && eq "-j 0" "$r0" 0 && eq "-j 50%" "$r50" 0 && t_ok

t_begin "bad -j values are usage errors"
run_belt run -j -3 workers.json; a=$rc
run_belt run -j lots workers.json; b=$rc
run_belt run -j 100000 workers.json; c=$rc
eq "-j -3" "$a" 2 && eq "-j lots" "$b" 2 && eq "-j 100000" "$c" 2 && contains "message" err "workers" && t_ok

t_begin "every policy runs the jobs"
okp=0
for p in shared round-robin random least-loaded power-of-two; do
    run_belt run -q --policy "$p" workers.json
    [ "$rc" = 0 ] && [ "$(lines belt-results.jsonl)" = 8 ] && okp=$((okp + 1))
done
eq "policies ok" "$okp" 5 && t_ok

t_begin "unknown policy: exit 2 with a hint"
run_belt run --policy round-robbin workers.json
eq "exit" "$rc" 2 && contains "hint" err "round-robin" && t_ok

t_begin "unknown option: exit 2 with a hint"
run_belt run --wrokers 3 workers.json
eq "exit" "$rc" 2 && contains "hint" err "did you mean '--workers'" && t_ok

t_begin "missing option value and two configs are usage errors"
run_belt run workers.json --results; a=$rc
run_belt run a.json b.json; c=$rc
eq "no value" "$a" 2 && eq "two configs" "$c" 2 && t_ok

t_begin "no config and no command: commands from stdin, as parallel reads them"
printf 'echo one\n' | "$BELT" run >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "ran" "$(cat out)" one && t_ok

t_begin "bad --timeout and --retries are usage errors"
run_belt run --timeout soon workers.json; a=$rc
run_belt run --retries -1 workers.json; b=$rc
eq "timeout" "$a" 2 && eq "retries" "$b" 2 && t_ok

t_begin "belt run --help and belt validate --help"
run_belt run --help; a=$rc; cp out help1
run_belt validate --help; b=$rc
eq "run help" "$a" 0 && contains "run help text" help1 "--keep-order" &&
eq "validate help" "$b" 0 && contains "validate help text" out "belt validate" && t_ok

t_begin "belt --help lists run and validate as implemented"
run_belt --help
eq "exit" "$rc" 0 && eq "not implemented" "$(grep -E '^ +(run|validate) .*not implemented' out)" "" && t_ok

# ---- found while trying belt run as GNU parallel (issue 12) ----------------

write one.json <<'JSON'
{"jobs": [{"id": "a", "run": "echo a"}, {"id": "b", "argv": ["echo", "b"]}]}
JSON

t_begin "--resume FILE that is not a results file: an error that names it"
printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n1\t:\t1.0\t0.1\t0\t2\t0\t0\techo a\n' >joblog.txt
run_belt run -q one.json --resume joblog.txt
eq "exit" "$rc" 2 && contains "names the file" err "joblog.txt" &&
contains "says why" err "not a result line" && t_ok

t_begin "--resume FILE that cannot be read: an error, never 'nothing done'"
mkdir -p adir
run_belt run -q one.json --resume adir
eq "exit" "$rc" 2 && contains "names the file" err "adir" && t_ok

t_begin "--resume FILE with a half-written last line: the rest counts"
rm -f belt-results.jsonl
run_belt run -q --results half.jsonl one.json
printf '{"id": "b", "sta' >>half.jsonl
run_belt run -q one.json --resume half.jsonl --results again.jsonl
eq "exit" "$rc" 0 && eq "both skipped" "$(jqr 'map(.status) | unique | join(",")' again.jsonl)" skipped && t_ok

t_begin "a second run keeps the first run's belt-results.jsonl (as .1)"
rm -f belt-results.jsonl belt-results.jsonl.*
run_belt run one.json; a=$rc
run_belt run one.json; b=$rc
eq "exits" "$a $b" "0 0" && eq "kept" "$(lines belt-results.jsonl.1)" 2 &&
eq "new" "$(lines belt-results.jsonl)" 2 && contains "said so" err "belt-results.jsonl.1" && t_ok

t_begin "relative cwd, stdin, output_dir and results are the config folder's"
mkdir -p sub/work
echo from-sub >sub/in.txt
write sub/paths.json <<'JSON'
{"results": "r.jsonl",
 "jobs": [{"id": "w", "run": "pwd; cat", "cwd": "work", "stdin": "in.txt",
           "output": "files", "output_dir": "logs"}]}
JSON
run_belt run -q sub/paths.json
eq "exit" "$rc" 0 && eq "results there" "$(lines sub/r.jsonl)" 1 &&
eq "cwd" "$(head -n 1 sub/logs/w.out)" "$T/sub/work" &&
eq "stdin" "$(tail -n 1 sub/logs/w.out)" from-sub && t_ok

t_begin "a matrix placeholder that names no matrix key fails validation"
write typo.json <<'JSON'
{"jobs": [{"id": "t-{n}", "run": "echo {m} ${HOME} {{m}}", "matrix": {"n": [1, 2]}}]}
JSON
run_belt validate typo.json
eq "exit" "$rc" 2 && contains "where" err "jobs[0].run" &&
contains "what" err "unknown placeholder {m}" && t_ok

t_begin "an experiment config given to belt validate: a hint to belt experiment"
run_belt validate "$srcdir/configs/experiments/policies-vs-load.json"
eq "exit" "$rc" 2 && contains "hint" err "belt experiment" && t_ok

t_begin "one limit for retries: 100 in a config and on the command line"
run_belt run --retries 101 one.json; a=$rc
run_belt run --retries 100 --dry-run one.json; b=$rc
write r101.json <<'JSON'
{"jobs": [{"id": "a", "run": "true", "retries": 101}]}
JSON
run_belt validate r101.json; c=$rc
eq "cli over" "$a" 2 && eq "cli at" "$b" 0 && eq "config over" "$c" 2 && t_ok

t_begin "result lines say what ran: run or argv"
run_belt run -q --results cmd.jsonl one.json
eq "run" "$(jqr 'map(select(.id == "a") | .run) | .[0]' cmd.jsonl)" "echo a" &&
eq "argv" "$(jqr 'map(select(.id == "b") | .argv | join(" ")) | .[0]' cmd.jsonl)" "echo b" && t_ok

t_begin "a command's result lines carry the command and its arguments"
run_belt run --results q.jsonl -k echo ::: x 'y z'
eq "exit" "$rc" 0 &&
eq "run" "$(jqr 'map(.run) | join("|")' q.jsonl)" "echo x|echo 'y z'" &&
eq "args" "$(jqr 'map(.args | join(",")) | join("|")' q.jsonl)" "x|y z" && t_ok

t_begin "--dead-letter and command-only options are refused with a config"
run_belt run --dead-letter d.jsonl one.json; a=$rc
run_belt run --tag one.json; b=$rc
eq "dead-letter" "$a" 2 && eq "tag" "$b" 2 && contains "why" err "only applies to a command" && t_ok

t_done
