#!/bin/sh
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and runs each for a fixed time.
#
#   sh fuzz/run.sh [target...]        (default: every target)
#   FUZZ_SECONDS=20  seconds per target (make fuzz)
#   FUZZ_JOBS=1      parallel fuzzing processes per target (-fork=N when > 1)
#   FUZZ_BUILD_ONLY=1  build, and run each target once over its seed corpus only
#
# Binaries, the growing corpus and any crash files go to build/fuzz/; the seeds in
# fuzz/corpus/<target>/ are read, never written. Exit status is non-zero when a target
# found a crash, a leak or a property violation (the input is saved in build/fuzz/artifacts/).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
OUT=$ROOT/build/fuzz
CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-20}
JOBS=${FUZZ_JOBS:-1}
ALL="json_decode json_encode uri_encode error_body liquid response"
[ $# -gt 0 ] || set -- $ALL

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)"
    exit 2
fi
mkdir -p "$OUT/artifacts"
PKGS="lua5.4 libcurl libcjson libcrypto zlib"  # zlib: fuzz/response.c
CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
CFLAGS="$CFLAGS -std=c99 -D_GNU_SOURCE -DCIO_ROOT=\"$ROOT\" -Isrc $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"

failed=""
for t in "$@"; do
    [ -f "fuzz/$t.c" ] || { echo "fuzz: no harness fuzz/$t.c"; exit 2; }
    echo "== fuzz $t: build"
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS -o "$OUT/$t" "fuzz/$t.c" src/*.c $LIBS; then
        failed="$failed $t(build)"
        continue
    fi
    mkdir -p "$OUT/corpus/$t"
    dict=""
    [ -f "fuzz/dict/$t.dict" ] && dict="-dict=fuzz/dict/$t.dict"
    # Liquid has a budget per input (fuzz/liquid.c): 2 s, 512 MiB RSS, 64 MiB per malloc.
    limits="-timeout=10 -rss_limit_mb=2048"
    [ "$t" = liquid ] && limits="-timeout=2 -rss_limit_mb=512 -malloc_limit_mb=64"
    if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
        echo "== fuzz $t: seeds only"
        # shellcheck disable=SC2086
        "$OUT/$t" -runs=0 $limits $dict "fuzz/corpus/$t" >"$OUT/$t.log" 2>&1
    else
        echo "== fuzz $t: ${SECONDS_EACH}s"
        fork=""
        [ "$JOBS" -gt 1 ] && fork="-fork=$JOBS -ignore_crashes=0"
        # -detect_leaks=0: the long-lived Lua state frees lazily, so every input would look like
        # a leak and trigger a LeakSanitizer scan (50x slower). Leaks of the C core are
        # checked by valgrind over the test suite (make check-memory).
        # shellcheck disable=SC2086
        "$OUT/$t" -max_total_time="$SECONDS_EACH" $limits -max_len=8192 \
            -detect_leaks=0 \
            -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-" $dict $fork \
            "$OUT/corpus/$t" "fuzz/corpus/$t" >"$OUT/$t.log" 2>&1
    fi
    status=$?
    grep -E '^#[0-9]+ *(DONE|INITED)|stat::number_of_executed_units|stat::peak_rss|cov: ' "$OUT/$t.log" | tail -3
    if [ $status -ne 0 ]; then
        echo "fuzz $t: FAILED (exit $status); log: $OUT/$t.log"
        grep -E 'ERROR|property violated|detail|SUMMARY|Test unit written' "$OUT/$t.log" | head -20
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failures:$failed"
    exit 1
fi
echo "fuzz: all targets clean"
