#!/bin/sh
# parallel_compat.sh: `belt run` as a drop-in for GNU parallel.  Each case
# runs the same arguments through `parallel` and `belt run` and compares
# their stdout byte for byte and their exit status (output whose order
# depends on timing is sorted first).  Covers the command line of issue 12
# (sources, replacement strings, quoting, grouping, output modes, --halt,
# --timeout, --retries, --joblog/--resume, --pipe/--pipepart, exit status)
# and the examples of parallel_examples(7) that need no remote host.
#
# GNU parallel's citation notice is silenced with a will-cite file in a
# HOME this test owns; both run their commands with /bin/sh
# (PARALLEL_SHELL), so that shell built-ins behave alike.
. "$(dirname "$0")/lib.sh"

if ! command -v parallel >/dev/null 2>&1; then
    echo "parallel_compat.sh: GNU parallel not found (apt-get install parallel); skipping"
    echo "0 passed, 0 failed"
    exit 77
fi

HOME="$T/home"
mkdir -p "$HOME/.parallel"
touch "$HOME/.parallel/will-cite"
export HOME
PARALLEL_SHELL=/bin/sh
export PARALLEL_SHELL
unset PARALLEL
BR="$BELT run"

# same NAME [--sort] [--in FILE] [--] ARGS...: parallel ARGS and belt run
# ARGS, stdin from FILE (default /dev/null), must print the same stdout and
# exit with the same status.
same() {
    name=$1
    shift
    sort=
    input=/dev/null
    while :; do
        case "$1" in
            --sort) sort=1; shift ;;
            --in) input=$2; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    t_begin "$name"
    prc=0
    parallel "$@" <"$input" >p.out 2>p.err || prc=$?
    brc=0
    "$BELT" run "$@" <"$input" >b.out 2>b.err || brc=$?
    compare
}

# same_sh NAME [--sort] SCRIPT: the sh script SCRIPT, run once with $P set
# to `parallel` and once to `belt run`, must print the same stdout and exit
# with the same status.  For cases that need files, pipes or a second run.
same_sh() {
    name=$1
    shift
    sort=
    if [ "$1" = --sort ]; then
        sort=1
        shift
    fi
    t_begin "$name"
    rm -rf p.d b.d
    mkdir p.d b.d
    prc=0
    (cd p.d && P=parallel sh -c "$1" >../p.out 2>../p.err) || prc=$?
    brc=0
    (cd b.d && P="$BR" sh -c "$1" >../b.out 2>../b.err) || brc=$?
    compare
}

compare() {
    if [ -n "$sort" ]; then
        LC_ALL=C sort p.out >p.sorted && mv p.sorted p.out
        LC_ALL=C sort b.out >b.sorted && mv b.sorted b.out
    fi
    if [ "$prc" != "$brc" ]; then
        t_fail "exit status: parallel $prc, belt $brc (belt stderr: $(head -c 300 b.err | tr '\n' '|'))"
    elif ! cmp -s p.out b.out; then
        t_fail "stdout differs: parallel '$(head -c 300 p.out | tr '\n' '|')', belt '$(head -c 300 b.out | tr '\n' '|')' (belt stderr: $(head -c 200 b.err | tr '\n' '|'))"
    else
        t_ok
    fi
}

printf '1\n2\n' >f12
printf 'A\nB\n' >fAB
seq 30 >s30
printf 'a\nb\nc\n' >abc

# ---- input sources and their order -------------------------------------------

same "::: arguments, -k" -k echo ::: a b c
same "arguments on stdin" --in abc -k echo
same "cartesian product, first source outermost" -k echo ::: a b ::: 1 2 ::: x y
same "linked :::+ stops with the shorter" -k echo ::: a b c :::+ 1 2
same "linked :::+ with a third source" -k echo ::: a b :::+ 1 2 ::: x y
same "a source linked to the second" -k echo ::: a b ::: 1 2 :::+ x y
same ":::: files" -k echo :::: f12 fAB
same "::::+ linked files" -k echo :::: f12 ::::+ fAB
same "-a is repeatable" -k -a f12 -a fAB echo
same "-a before ::: sources" -k -a f12 echo ::: x y
same ":::: - reads stdin" --in abc -k echo ::: x :::: -
same "an empty source counts as one empty argument" -k -a /dev/null echo ::: x
same "no command: the arguments are the commands" -k ::: 'echo a' 'echo b c'
same "{} as the command is not quoted" -k {} ::: 'echo a; echo b'

# ---- splitting input ---------------------------------------------------------

printf 'a b\0c\nd\0e' >nul.in
printf 'a,b,,c,' >comma.in
printf 'x\ty\n' >tab.in
printf 'a\n\nb' >blank.in
printf 'a\n  \nb\n' >spaces.in
same "-0: NUL-terminated items" --in nul.in -k -0 echo
same "-d ,: keeps empty items, no empty last one" --in comma.in -k -d , echo
same "-d '\\t': the last item keeps its newline" --in tab.in -k -d '\t' echo
same "an empty line is an empty argument" --in blank.in -k echo
same "-r skips blank lines" --in spaces.in -k -r echo
same "--colsep: positional columns" -k --colsep , echo {2} {1} ::: 'a,b' 'c,d,e'
same "--colsep: {} is every column, trimmed" -k --colsep , echo {} ::: ' a , b '
same "--colsep with a regular expression" -k --colsep ' +' echo {2}-{1} ::: 'a   b' 'c d'
same "--colsep '\\t'" --in tab.in -k --colsep '\t' echo {2} {1}

# ---- replacement strings -------------------------------------------------------

same "{.} {/} {//} {/.} {#}" -k echo {.} {/} {//} {/.} {#} ::: dir/sub.x/file.tar.gz /a a .bashrc a.b/c a/.x x. a/ a//b a/b/
same "{//} of '' and /" -k echo {//} ::: '' / //
same "positional {2} {1}" -k echo {2} {1} ::: a b ::: 1 2
same "positional with modifiers" -k echo {1.} {1/} {1//} {1/.} {-1} {2/.} ::: a/b.c ::: d/e.f
same "a missing positional argument is empty" -k echo {1} {2} ::: a
same "{0} and {0.} are {} and {.}" -k --dry-run echo {0} {0.} ::: a.b c
same "no replacement string: arguments appended" -k echo x ::: a 'b c'
same "{#} in a dry run" -k -j2 --dry-run echo {#} ::: a b c d
same "{%} with one job slot" -k -j1 echo {%} ::: a b c
same_sh "{%} takes the slots 1 to -j" '$P -j2 "echo {%}" ::: a b c d e f | sort -u'
same "-I" -k -I ,, echo ,, x,,y ::: a b
same "-i takes the next word, as parallel's optional value" -k -i echo '{}' ::: a
same "--replace=R" -k --replace=RR echo RR ::: a
same "--extensionreplace and --basenamereplace" -k --er XX --bnr YY echo XX YY ::: d/f.c
same "--seqreplace and --slotreplace" -k -j1 --seqreplace SQ --slotreplace SL echo SQ SL ::: a b

# ---- quoting ---------------------------------------------------------------

same "--dry-run quotes as parallel" -k --dry-run echo {} ::: a 'b c' "d'e" '' 'x$y' a/b.c '~' a=b "'" "''" "a'" 'é' '-x' '+y' 'a\b' '@' ':'
same "{} inside double quotes is quoted too" -k 'echo "file: {}"' ::: c 'd e'
same "a quoted {} in an arithmetic expansion works" -k 'echo $((9-{}))' ::: 1 2
same "the words are joined into one shell command" -k echo 'a  b' '|' tr a-z A-Z ::: c
same "-q quotes every word" -k -q echo 'a b' '$HOME' {} ::: 'x y'
same "-q sh -c" -k -q sh -c 'echo "<$0>"' ::: 'a b'
same "arguments with shell syntax stay literal" -k printf '<%s>\n' ::: 'a; echo INJECTED' '$(echo no)' '`echo no`' '*' "it's"
same_sh "mv \"{}\" \"{}.bak\" (example of issue 12)" 'touch z && $P -k '\''mv "{}" "{}.bak"'\'' ::: z && ls'

# ---- grouping arguments ---------------------------------------------------------

same "-n2" -k -n2 echo ::: a b c
same "-n2 with x{}y" -k -n2 echo x{}y ::: a b c
same "-N2: context replace" -k -N2 echo x{}y ::: a b c
same "-N2 with {1}-{2}" -k -N2 echo {1}-{2} ::: a b c
same "-n2 over two sources" -k -n2 echo {} ::: a b ::: 1 2
same "-X spreads over the job slots" -k -j2 -X echo pre{}post ::: a b c
same "-X -j3, positional and context" -k -j3 -X echo x{1}y{}z ::: a b c d e
same "-m" -k -j1 -m echo pre{}post ::: a b c
same "-m spreads too" -k -j2 -m echo ::: a b c d e
same "--xargs: all that fits" -k -j2 --xargs echo x{}y ::: a b c
same "-X from stdin" --in s30 -k -j1 -X echo n{}

# ---- output ----------------------------------------------------------------

same "output is grouped per job" -k -j4 'for i in 1 2 3; do echo {}$i; sleep 0.0{}; done' ::: 3 1 2
same "-k keeps input order" -k -j4 'sleep 0.$((4-{})); echo {}' ::: 1 2 3
same "grouped without -k (sorted)" --sort -j3 'echo {}a; sleep 0.0{}; echo {}b' ::: 3 2 1
same "stdout only; stderr apart" -k 'echo out{}; echo err{} >&2' ::: a b
same "--tag" -k --tag echo ::: a b ::: 1 2
same "--tag on every line, after \\r too" -k --tag 'printf "1\n2\r3\n\n4"' ::: a
same "--tagstring with a positional" -k --tagstring 'x{2}y' echo ::: a b ::: 1
same "--tagstring with \\t" -k --tagstring '{}\t-' echo ::: a
same "--dry-run --tag: the commands are tagged too" -k --dry-run --tag echo ::: a 'b c'
same "--line-buffer (sorted)" --sort -j2 --line-buffer 'echo {}1; echo {}2' ::: a b
same "--line-buffer --tag (sorted)" --sort -j2 --line-buffer --tag 'echo {}1; echo {}2' ::: a b
same "-u (sorted)" --sort -j2 -u 'echo {}1; echo {}2' ::: a b
same "-k with -j and slow first job" -k -j3 'sleep 0.{}; echo {}' ::: 3 1 2

# ---- control ---------------------------------------------------------------

same "-j +0, -j -1, -j 100%" -k -j +0 echo ::: a
same "-j -1" -k -j -1 echo ::: a
same "-j 50%" -k -j 50% echo ::: a b
same "-j0" --sort -j0 echo ::: a b c
same "--delay" -k --delay 0.05 echo ::: a b c
same "--shuf (sorted)" --sort --shuf echo ::: a b c d e
same "--shuf -k: the jobs are numbered after the shuffle" -k --shuf echo {#} ::: a b c d
same "--timeout kills the slow job" -k --timeout 3 'sleep {}; echo {}' ::: 0 30
same "--timeout with a percentage" -k --timeout 1000% 'echo {}' ::: a b c d
same_sh "--retries 3 runs a failing job 3 times, prints the last" '$P --retries 3 "echo try; echo {} >>count; exit 1" ::: x; echo "status $?"; cat count'
same_sh "--retries: a retry that succeeds" '$P --retries 3 "if [ -e m{} ]; then echo ok {}; else touch m{}; exit 1; fi" ::: 1; echo "status $?"'

# ---- exit status and --halt -------------------------------------------------

same "all ok: 0" -k 'exit {}' ::: 0 0 0
same "failures: their number" -k 'exit {}' ::: 0 1 2 3
same "killed by a signal counts as failed" -k 'kill -9 $$' ::: 1
same "more than 100 failures: 101" -j8 'exit 1' ::: $(seq 1 105)
same "a missing command fails" -k 'no-such-command-xyz {}' ::: a
same "--halt now,fail=1: the failing job's status" -k -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 0 3 0 0
same "--halt soon,fail=2" -k -j1 --halt soon,fail=2 'echo {}; exit {}' ::: 0 1 0 2 0 3
same "--halt now,success=1" -k -j1 --halt now,success=1 'echo {}; exit {}' ::: 1 2 0 3
same "--halt now,fail=50%" -k -j1 --halt now,fail=50% 'echo {}; exit {}' ::: 0 1 0 2 0 3
same "--halt now,done=2" -k -j1 --halt now,done=2 'echo {}; exit {}' ::: 1 2 0 3
same "--halt 2 (old form)" -k -j1 --halt 2 'echo {}; exit {}' ::: 0 4 0
same "--halt-on-error 1" -k -j1 --halt-on-error 1 'echo {}; exit {}' ::: 0 5 0
same "--halt never" -k -j1 --halt never 'exit {}' ::: 1 0 2
same_sh "a closed stdout stops the run" 'seq 3000 | $P -k -j2 "echo {}" | head -n 2; seq 3000 | { $P -j2 "echo {}"; echo "status $?" >status; } | head -n 1 >/dev/null; cat status'

# ---- job log and resume ----------------------------------------------------

same_sh "--joblog columns" '$P -k --joblog log "exit {}" ::: 0 3 0 >/dev/null; cut -f 1,2,5,7,8,9 log'
same_sh "--resume skips what the job log has" '$P -k -j1 --joblog log "echo {}; [ {} != 2 ]" ::: 1 2 3; $P --resume -k -j1 --joblog log echo ::: 1 2 3 4 5; echo "status $?"; cut -f 1,7,9 log'
same_sh "--resume-failed reruns the failed ones" '$P -k -j1 --joblog log "echo {}; [ {} != 2 ]" ::: 1 2 3; $P --resume-failed -k -j1 --joblog log echo ::: 1 2 3 4; cut -f 1,7,9 log'
same_sh "--retry-failed reruns the logged commands" '$P -k -j1 --joblog log "echo {}; [ {} != 2 ]" ::: 1 2 3; $P --retry-failed -k --joblog log; echo "status $?"'
same_sh "--resume with no job log yet runs everything" '$P --resume -k -j1 --joblog new.log echo ::: a b; cut -f 1,9 new.log'

# ---- --pipe and --pipepart ----------------------------------------------------

seq 100000 >s100k
printf 'a\n\nb\n' >ablank
same "--pipe --block 10" --in s30 -k --pipe --block 10 'echo {#}: $(wc -l)'
same "--pipe -N7" --in s30 -k --pipe -N7 'echo {#}: $(wc -l)'
same "--pipe -N1 and an empty record" --in ablank -k --pipe -N1 'echo {#}: $(od -c | head -n 1)'
same "--pipe --recstart, growing blocks" --in s30 -k --pipe --recstart 5 --block 3 'echo {#}: $(tr "\n" ,)'
same "--pipe --recend" --in comma.in -k --pipe --recend , --block 2 'echo {#}: $(cat)'
same "--pipe, default 1M block" --in s100k -k --pipe wc -l
same "--pipe --block 100k -k" --in s100k -k --pipe --block 100k wc -l
same "--pipe keeps every byte" --in s100k -k --pipe --block 64k 'md5sum' 
same "--pipepart --block 10" -k --pipepart -a s30 --block 10 'echo {#}: $(wc -l)'
same "--pipepart, default block (10 per slot)" -k -j2 --pipepart -a s30 'echo {#}: $(wc -l)'
same "--pipepart --block -1" -k -j3 --pipepart --block -1 -a s100k wc -l
same_sh "--round-robin: each record once, at most -j jobs" 'seq 100000 | $P --pipe --block 100k --round-robin -j3 wc -l | awk "{ s += \$1; n++ } END { print s, (n <= 3) }"'
same_sh "--pipepart --round-robin" 'seq 1000 >in; $P --pipepart -a in --round-robin -j2 wc -l | sort -n | awk "{ s += \$1 } END { print s, NR }"'

# ---- examples of parallel_examples(7) --------------------------------------

same_sh "example: working as xargs -n1 (gzip)" 'for f in a b c; do echo $f >$f.html; done; find . -name "*.html" | $P gzip --best; ls | sort'
same_sh "example: reading arguments from the command line" 'for f in a b; do echo $f >$f.html; done; $P gzip --best ::: *.html; ls | sort'
same_sh "example: inserting multiple arguments (-m mv)" 'mkdir destdir; touch a.log b.log c.txt; ls | grep -E "\.log$" | $P -m mv {} destdir; ls destdir'
same_sh "example: context replace (-X rm)" 'seq -w 0 99 | $P touch pict{}.jpg; seq -w 0 99 | $P -X rm pict{}.jpg; ls | wc -l'
same_sh "example: substitution and redirection" 'echo hi >a.gz.src; gzip -c a.gz.src >a.gz; $P zcat {} ">"{.}.out ::: a.gz; cat a.out'
same_sh "example: composed commands" 'mkdir d1 d2; touch d1/x d2/y d2/z; ls | $P -k "echo -n {}\" \"; ls {}|wc -l"'
same_sh "example: removing the extension" '$P -k --dry-run "convert {} {.}.png" ::: a.jpg b.c.jpg'
same_sh "example: rewriting nested for-loops" '$P echo {1} {2} ::: red green blue ::: S M L XL XXL | sort'
same_sh "example: difference between all files (--tag)" 'printf "a\nb\n" >A; printf "a\nc\n" >B; $P --tag "diff {1} {2} | wc -l" ::: A B ::: A B | sort'
same_sh "example: from a to b and b to c (::::+)" 'printf "aardvark\nbabble\ncab\ndab\neach\n" >in.txt; head -n -1 in.txt >h; tail -n +2 in.txt >t; $P -k echo {1} - {2} :::: h ::::+ t'
same_sh "example: speeding up fast jobs (-X touch)" 'seq -w 0 199 | $P -X touch pict{}.jpg; ls | wc -l'
same_sh "example: using shell variables" 'VAR="My brother'\''s 12\" records are worth <\$\$\$>"; $P -k -q echo "$VAR" ::: "!"; export VAR; $P -k echo "\"\$VAR\"" ::: "!"'
same_sh "example: keep order of output (-k append)" 'printf "l1\nl2\nl3\n" | $P -k echo {} append_string'
same_sh "example: group output lines" '$P -k -j2 "printf \"%s-start\n%s\" {} {}; sleep 0.{};printf \"%s\n\" -middle;echo {}-end" ::: 4 2 1'
same_sh "example: run the same command several times (-N0)" 'seq 3 | $P -N0 echo hello'
same_sh "example: working as cat | sh" 'printf "echo one\necho two\n" | $P -k'
same_sh "example: call a program with FASTA records" 'printf ">a\nAC\n>b\nGT\nTT\n" | $P -k --pipe -N1 --recstart ">" "tr -d \"\\n\"; echo"'
same_sh "example: grouping input lines (-N2)" 'seq 6 | $P -k -N2 echo seq:\$PARALLEL_SEQ arg1:{1} arg2:{2}'
same_sh "example: a big file through --pipe, blocks sorted" 'seq 3000 | sort -r >big; $P -k --pipe --block 4k sort -n <big | md5sum'
same_sh "example: parallel grep" 'printf "x\nneedle\n" >f1; printf "needle y\n" >f2; find . -type f | sort | $P -k -j150% -n 1000 -m grep -H -n needle {}'

t_done
