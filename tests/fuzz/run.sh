#!/usr/bin/env bash
# tests/fuzz/run.sh: build the config fuzzer with clang and run it briefly.
#
#   tests/fuzz/run.sh [SECONDS]      default 30 (or $FUZZ_SECONDS)
#
# Builds build-fuzz/fuzz_config from tests/fuzz/fuzz_config.c and the
# library (src/libbelt_core.la, built by the Makefile in build-fuzz/) with
# clang -fsanitize=fuzzer,address,undefined,
# then runs it for SECONDS on a scratch corpus seeded from the test and
# example configs and tests/fuzz/corpus/ (neither is modified; new inputs
# stay in build-fuzz/corpus/).
# Exit status: 0 when the run ends without a crash, leak, sanitizer report
# or timeout; non-zero otherwise (the crashing input is saved in
# build-fuzz/ as crash-*, leak-* or timeout-*, and the log printed), 77
# when clang or its libFuzzer runtime is missing (Debian: clang,
# libclang-rt-14-dev or the clang package's own runtime).
# Environment: CC (default clang), FUZZ_SECONDS.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-${FUZZ_SECONDS:-30}}
cc=${CC:-clang}
out="$top/build-fuzz"
mkdir -p "$out"

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: $cc not found; skipping" >&2
    exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' \
    | "$cc" -x c -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
    echo "fuzz: $cc cannot link -fsanitize=fuzzer; skipping" >&2
    exit 77
fi

# The library's objects come from the Makefile (src/libbelt_core.la), built
# with clang and the fuzzer's instrumentation in a build tree of its own, so
# the fuzzer links exactly what libbelt is made of.
cflags_fuzz="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
if [ ! -f "$out/Makefile" ]; then
    echo "fuzz: configuring $out"
    if ! (cd "$out" && "$top/configure" --disable-shared CC="$cc" \
            CFLAGS="$cflags_fuzz" >configure.out 2>&1); then
        cat "$out/configure.out"
        echo "fuzz: configure FAILED" >&2
        exit 1
    fi
fi
echo "fuzz: building $out/fuzz_config"
make -C "$out" -j"${JOBS:-$(nproc 2>/dev/null || echo 2)}" --no-print-directory \
    src/libbelt_core.la >"$out/make.out" 2>&1 || { cat "$out/make.out"; exit 1; }
cflags=$(pkg-config --cflags jansson 2>/dev/null || true)
libs=$(pkg-config --libs jansson 2>/dev/null || echo -ljansson)
# shellcheck disable=SC2086
"$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$top/include" -I"$top/src" $cflags \
    "$top/tests/fuzz/fuzz_config.c" "$out/src/.libs/libbelt_core.a" \
    $libs -lpthread -lm -o "$out/fuzz_config"

rm -rf "$out/corpus"
mkdir -p "$out/corpus"
# Seeds: every config the tests and examples use (tests/configs/*/*/config.json,
# tests/cli/configs, configs/), plus the few inputs of tests/fuzz/corpus/ that
# have no such home (a past crash, say).
i=0
while IFS= read -r f; do
    i=$((i + 1))
    cp "$f" "$out/corpus/seed-$i.json"
done < <(find "$top/tests/configs" "$top/tests/cli/configs" "$top/configs" \
             -name '*.json' -type f 2>/dev/null | sort)
cp "$top"/tests/fuzz/corpus/* "$out/corpus/" 2>/dev/null || true

echo "fuzz: running for ${secs}s"
cd "$out"
rc=0
ASAN_OPTIONS="detect_leaks=1 ${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}" \
    ./fuzz_config -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 \
        -max_len=8192 \
        -dict="$top/tests/fuzz/config.dict" -print_final_stats=1 \
        corpus >fuzz.log 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
    cat fuzz.log
    echo "fuzz: FAILED (exit $rc); inputs: $(ls crash-* leak-* timeout-* oom-* 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
fi
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' fuzz.log || tail -3 fuzz.log
echo "fuzz: passed"
