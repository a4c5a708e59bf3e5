#!/bin/sh
# bad_input.sh: invalid configs give one line "file:line:col: json.path:
# message", exit 2 and run nothing, from `belt run` and `belt validate`
# alike.  Data-driven: tests/cli/configs/bad/<case>.json, and
# <case>.expect holding fixed strings that must all be in the message.
. "$(dirname "$0")/lib.sh"

for cfg in "$CONFIGS"/bad/*.json; do
    name=$(basename "$cfg" .json)
    cp "$cfg" "$T/$name.json"
    t_begin "bad config $name: belt run"
    rm -f belt-results.jsonl
    run_belt run -q "$name.json"
    good=1
    eq "exit" "$rc" 2 || good=0
    if [ $good = 1 ]; then
        eq "one line" "$(lines err)" 1 || good=0
    fi
    if [ $good = 1 ]; then
        grep -qE "^$name\.json(:[0-9]+(:[0-9]+)?)?: " err ||
            { t_fail "not 'file:line:col: ...': $(cat err)"; good=0; }
    fi
    if [ $good = 1 ]; then
        while IFS= read -r want; do
            [ -n "$want" ] || continue
            contains "message" err "$want" || { good=0; break; }
        done <"${cfg%.json}.expect"
    fi
    if [ $good = 1 ]; then
        eq "nothing run" "$([ -e belt-results.jsonl ] && echo yes || echo no)" no || good=0
    fi
    [ $good = 1 ] && t_ok
    cp err run.err

    t_begin "bad config $name: belt validate says the same"
    run_belt validate "$name.json"
    eq "exit" "$rc" 2 && eq "same message" "$(cat err)" "$(cat run.err)" &&
    eq "stdout" "$(cat out)" "" && t_ok
done

t_begin "missing config file: exit 2 with the system's message"
run_belt run -q no-such-file.json
eq "exit" "$rc" 2 && contains "message" err "no-such-file.json" && t_ok

t_begin "belt validate on good configs"
write good.json <<'JSON'
{"jobs": [{"id": "x-{n}", "run": "echo {n}", "matrix": {"n": [1, 2, 3]}}, {"id": "y", "kind": "noop"}]}
JSON
write one.json <<'JSON'
{"jobs": [{"id": "y", "kind": "noop"}]}
JSON
run_belt validate good.json one.json
eq "exit" "$rc" 0 && eq "output" "$(cat out)" "$(printf 'good.json: ok (4 jobs)\none.json: ok (1 job)')" && t_ok

t_begin "belt validate: one bad config among good ones gives 2"
cp "$CONFIGS/bad/cycle.json" cycle.json
run_belt validate good.json cycle.json
eq "exit" "$rc" 2 && contains "good still reported" out "good.json: ok" && t_ok

t_begin "belt validate without a config is a usage error"
run_belt validate
eq "exit" "$rc" 2 && t_ok

t_begin "unreadable --resume file is an error before anything runs"
mkdir -p adir
run_belt run -q --resume adir one.json
eq "exit" "$rc" 2 && eq "nothing run" "$([ -e belt-results.jsonl ] && echo yes || echo no)" no && t_ok

t_begin "unwritable results file: exit 2, nothing run"
run_belt run -q --results /nonexistent-dir/r.jsonl one.json
eq "exit" "$rc" 2 && contains "message" err "/nonexistent-dir/r.jsonl" && t_ok

t_done
