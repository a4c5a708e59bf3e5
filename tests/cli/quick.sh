#!/bin/sh
# quick.sh: quick mode, `belt run --command CMD` with input lines, as
# people use xargs -P and GNU parallel: safe substitution, grouped output,
# -k, -a, -0, --line-buffer, exit status, --results, --dry-run.
. "$(dirname "$0")/lib.sh"

t_begin "one job per input line, {} substituted"
printf 'a\nb\nc\n' | "$BELT" run -j 2 --command 'echo x{}y' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "output" "$(sort out | tr '\n' ' ')" "xay xby xcy " &&
eq "no results file" "$([ -e belt-results.jsonl ] && echo yes || echo no)" no &&
eq "stderr empty when not a terminal" "$(cat err)" "" && t_ok

# Input lines full of shell syntax: each must arrive as one literal word.
cat >nasty.txt <<'IN'
with space
it's quoted
"double" quotes
$HOME and $(echo no) and `echo no`
a; echo INJECTED
back\slash
*
  leading and trailing  
IN

t_begin "arguments with spaces, quotes, \$ and ; are passed literally"
"$BELT" run -j 3 -k -a nasty.txt --command 'printf "<%s>\n" {}' >out 2>err; rc=$?
want=$(sed 's/.*/<&>/' nasty.txt)
eq "exit" "$rc" 0 && eq "output" "$(cat out)" "$want" && t_ok

t_begin "{} may appear several times; composed commands work"
printf 'p q\n' | "$BELT" run --command 'echo a; echo [{}] [{}]' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "output" "$(cat out | tr '\n' '|')" "a|[p q] [p q]|" && t_ok

t_begin "without {} the argument is appended"
printf 'one two\n' | "$BELT" run --command 'printf "%s|"' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "output" "$(cat out)" "one two|" && t_ok

t_begin "-k keeps input order"
seq 1 12 | "$BELT" run -j 4 -k --command 'n={}; sleep 0.$(( (13 - n) % 4 )); echo $n' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "order" "$(cat out | tr '\n' ' ')" "1 2 3 4 5 6 7 8 9 10 11 12 " && t_ok

t_begin "output is grouped per job: lines of two jobs never mix"
seq 1 6 | "$BELT" run -j 6 --command 'for i in 1 2 3 4 5; do echo {}-$i; sleep 0.02; done' >out 2>err; rc=$?
# Every job's five lines must be contiguous.
blocks=$(cut -d- -f1 out | uniq | wc -l | tr -d ' ')
eq "exit" "$rc" 0 && eq "lines" "$(lines out)" 30 && eq "blocks" "$blocks" 6 && t_ok

t_begin "stdout and stderr stay apart"
printf 'x\ny\n' | "$BELT" run --command 'echo out-{}; echo err-{} >&2' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "stdout" "$(sort out | tr '\n' ' ')" "out-x out-y " &&
eq "stderr" "$(grep -c '^err-' err)" 2 && eq "no err in out" "$(grep -c err- out)" 0 && t_ok

t_begin "large output is passed through whole (spooled, not truncated)"
printf '1\n2\n' | "$BELT" run -j 2 --command 'head -c 3000000 /dev/zero | tr "\\0" {}; echo' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "bytes" "$(wc -c <out | tr -d ' ')" 6000002 &&
eq "blocks" "$(fold -w 1000 out | cut -c1 | uniq | wc -l | tr -d ' ')" 2 && t_ok

t_begin "a failing job gives exit 1, the others still run"
printf '0\n3\n0\n' | "$BELT" run -j 1 --command 'echo ran {}; exit {}' >out 2>err; rc=$?
eq "exit" "$rc" 1 && eq "ran" "$(lines out)" 3 && t_ok

t_begin "--halt-on-error stops starting jobs after a failure"
printf '0\n1\n0\n0\n0\n' | "$BELT" run -j 1 --halt-on-error --command 'echo {}; exit {}' >out 2>err; rc=$?
eq "exit" "$rc" 1 && eq "ran" "$(cat out | tr '\n' ' ')" "0 1 " && t_ok

t_begin "-0 reads NUL-terminated items"
printf 'a b\0c\nd\0' | "$BELT" run -0 -k --command 'printf "[%s]" {}' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "output" "$(cat out)" "$(printf '[a b][c\nd]')" && t_ok

t_begin "--line-buffer passes whole lines through"
printf 'a\nb\n' | "$BELT" run -j 2 --line-buffer --command 'echo {}1; sleep 0.1; echo {}2' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "lines" "$(sort out | tr '\n' ' ')" "a1 a2 b1 b2 " && t_ok

t_begin "--results writes JSON lines in quick mode (exit: the number of failures)"
printf 'a\nb\n' | "$BELT" run --quiet --results q.jsonl --command 'echo {}; exit 2' >out 2>err; rc=$?
eq "exit" "$rc" 2 && eq "lines" "$(lines q.jsonl)" 2 &&
eq "ids" "$(jqr 'map(.id) | sort | join(",")' q.jsonl)" "1,2" &&
eq "exit codes" "$(jqr 'map(.exit_code) | unique | join(",")' q.jsonl)" 2 && t_ok

t_begin "--joblog in quick mode"
printf 'a\n' | "$BELT" run --joblog q.log --command 'echo {}' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "command (quoted as parallel quotes)" "$(tail -n 1 q.log | cut -f 9)" "echo a" &&
eq "seq" "$(tail -n 1 q.log | cut -f 1)" 1 && t_ok

t_begin "--dry-run prints the commands, as parallel does"
printf "it's\n" | "$BELT" run --dry-run --command 'echo {}' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "run" "$(cat out)" "echo 'it'\"'\"'s'" && t_ok

t_begin "--timeout in quick mode"
printf '5\n' | "$BELT" run --timeout 200ms --command 'sleep' >out 2>err; rc=$?
eq "exit" "$rc" 1 && contains "notice" err "timed out" && t_ok

t_begin "missing -a file is a usage error"
"$BELT" run -a nosuch.txt --command 'echo {}' >out 2>err; rc=$?
eq "exit" "$rc" 2 && contains "message" err "nosuch.txt" && t_ok

t_begin "--command with a config, and quick-only options without it, are usage errors"
write c.json <<'JSON'
{"jobs": [{"id": "a", "kind": "noop"}]}
JSON
run_belt run --command 'echo' c.json; a=$rc
run_belt run -a nasty.txt c.json; b=$rc
eq "--command + config" "$a" 2 && eq "-a without --command" "$b" 2 && t_ok

t_begin "empty input runs nothing and succeeds"
"$BELT" run --command 'echo {}' </dev/null >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "output" "$(cat out)" "" && t_ok

t_begin "SIGKILL of belt leaves no spool file behind"
mkdir -p spool
printf '1\n2\n' | TMPDIR="$T/spool" "$BELT" run -j 2 --command 'head -c 100000 /dev/zero; echo $$ >pid.{}; exec sleep 60' >out 2>err &
bpid=$!; t_bg_pids="$t_bg_pids $bpid"
if wait_for test -s pid.2; then
    sleep 0.2
    kill -KILL $bpid; wait $bpid 2>/dev/null
    kill -KILL -"$(cat pid.1)" -"$(cat pid.2)" 2>/dev/null
    eq "files left in TMPDIR" "$(ls -A spool | wc -l | tr -d ' ')" 0 && t_ok
else
    t_fail "jobs did not start"
fi

t_begin "many jobs: every line runs once (xargs-style throughput)"
seq 1 500 | "$BELT" run -j 4 --command 'echo {}' >out 2>err; rc=$?
eq "exit" "$rc" 0 && eq "count" "$(sort -n out | uniq | wc -l | tr -d ' ')" 500 && t_ok

if command -v script >/dev/null 2>&1; then
    t_begin "a command with no input on a terminal gets a hint"
    timeout 20 script -qec "$BELT run -j2 echo" /dev/null </dev/null >out 2>&1; rc=$?
    eq "exit" "$rc" 0 && contains "hint" out "put them after :::" && t_ok

    t_begin "no command and no config on a terminal: a usage error"
    timeout 20 script -qec "$BELT run" /dev/null </dev/null >out 2>&1; rc=$?
    eq "exit" "$rc" 2 && contains "hint" out "belt run COMMAND ::: ARGS" && t_ok
fi

t_done
