#!/bin/sh
# policies.sh: `belt run` with the join-idle-queue and work-stealing
# policies, from --policy and from the config: every job runs once and gets
# one ok result, on jobs of mixed lengths (one long sleep among short ones).
. "$(dirname "$0")/lib.sh"

# 1 long job and 23 short ones over 4 workers.
write mixed.json <<'JSON'
{
  "workers": 4,
  "jobs": [
    {"id": "long", "kind": "sleep", "duration": "300ms"},
    {"id": "s-{i}", "kind": "sleep", "duration": "5ms",
     "matrix": {"i": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                      17, 18, 19, 20, 21, 22, 23]}},
    {"id": "after", "kind": "noop", "after": ["long"]}
  ]
}
JSON

for p in work-stealing join-idle-queue; do
    t_begin "--policy $p: every job once, all ok"
    run_belt run -q --policy "$p" mixed.json
    eq "exit" "$rc" 0 && eq "results" "$(lines belt-results.jsonl)" 25 &&
    eq "unique ids" "$(jqr 'map(.id) | unique | length' belt-results.jsonl)" 25 &&
    eq "all ok" "$(jqr 'map(select(.status != "ok")) | length' belt-results.jsonl)" 0 &&
    eq "workers in range" "$(jqr 'map(select(.worker < 0 or .worker > 3)) | length' belt-results.jsonl)" 0 &&
    t_ok
done

t_begin "\"policy\": \"work-stealing\" in the config"
sed 's/"workers": 4,/"workers": 3, "policy": "work-stealing",/' mixed.json >ws.json
run_belt run -q ws.json
eq "exit" "$rc" 0 && eq "results" "$(lines belt-results.jsonl)" 25 && t_ok

t_begin "\"policy\": \"join-idle-queue\" in the config, --dry-run accepts it"
sed 's/"workers": 4,/"workers": 3, "policy": "join-idle-queue",/' mixed.json >jiq.json
run_belt run -q --dry-run jiq.json; a=$rc
run_belt run -q jiq.json
eq "dry-run" "$a" 0 && eq "exit" "$rc" 0 && eq "results" "$(lines belt-results.jsonl)" 25 && t_ok

t_begin "a misspelt policy gets a hint naming the new policies"
run_belt run --policy work-steal mixed.json
eq "exit" "$rc" 2 && contains "hint" err "work-stealing" && t_ok

t_begin "--help lists both"
run_belt run --help
eq "exit" "$rc" 0 && contains "jiq" out "join-idle-queue" && contains "ws" out "work-stealing" && t_ok

t_done
