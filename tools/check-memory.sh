#!/bin/sh
# make check-memory: the busted suite against the C core under AddressSanitizer + UBSan (Lua
# 5.4, then LuaJIT), then a chosen subset under valgrind memcheck (Lua 5.4) with leak
# checking. Each pass starts one shared test server through spec/run.sh. The last line is
# "N passed, N failed" over all passes.
#
#   sh tools/check-memory.sh [asan] [asan-luajit] [valgrind]   (default: all three)
#   VALGRIND_SPECS="..."    spec files for the valgrind pass (default below)
#   ASAN_SPECS="..."        spec files for the ASan pass (default: spec, all of them)
#
# ASan passes: build/asan/customerio/core.so (build/asan-luajit/ for LuaJIT), built by clang
# with -fsanitize=address,undefined (UB aborts). The interpreters are not instrumented, so the ASan runtime is LD_PRELOADed into
# every Lua interpreter of the run (busted and the Lua child processes some specs start), not
# into the other programs they run (see tools/asan-unpreload.c); leak detection is off there
# (busted exits through os.exit without lua_close; valgrind checks leaks instead). Every
# report goes to build/memcheck/reports/, and any such file fails the run, whichever
# process wrote it.
#
# valgrind pass: build/valgrind/customerio/core.so (-O1 -g), valgrind --leak-check=full with
# definite leaks as errors and tools/valgrind.supp for one-time allocations of libcurl,
# OpenSSL and the interpreter. Runs VALGRIND_SPECS only (JSON, core, HTTP client, hostile
# input, secrets, Track, App, sandbox, the Redis client) to stay within a few minutes.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
OUT=$ROOT/build/memcheck
[ $# -gt 0 ] || set -- asan asan-luajit valgrind
VALGRIND_SPECS=${VALGRIND_SPECS:-"spec/json_spec.lua spec/core_spec.lua spec/http/client_spec.lua spec/hostile_spec.lua spec/secrets_spec.lua spec/track/init_spec.lua spec/app/init_spec.lua spec/app/send_spec.lua spec/sandbox_spec.lua spec/ratelimit/redis_spec.lua"}

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=""
rm -rf "$OUT"
mkdir -p "$OUT/reports"

# Specs that start their own nginx (ngx, queue_ngx, sandbox over HTTP, embed) load the plain
# LuaJIT core from build/luajit inside nginx, whatever this run instruments: build it first
# (on a fresh clone, make check-memory runs before make test has built anything).
make --no-print-directory LUA=luajit build >/dev/null || exit 1

# Runs spec/run.sh with the given environment; adds its last "N passed, N failed" line.
run_suite() {
    label=$1
    shift
    log="$OUT/$label.log"
    start=$(date +%s)
    env "$@" sh spec/run.sh "$LUA_NAME" >"$log" 2>&1
    status=$?
    secs=$(( $(date +%s) - start ))
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    passed=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    failed=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
    [ -n "$passed" ] || passed=0
    [ -n "$failed" ] || failed=1
    [ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
    grep -E '^not ok' "$log" | head -20
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    SUMMARY="$SUMMARY$label: $passed passed, $failed failed (${secs}s)
"
    echo "$label: $passed passed, $failed failed (${secs}s); log: $log"
}

# Fails the pass when sanitizer or valgrind reports were written; prints them.
check_reports() {
    label=$1
    pattern=$2
    found=0
    for f in $pattern; do
        [ -s "$f" ] || continue
        found=1
        echo "== $label report: $f"
        head -60 "$f"
    done
    if [ $found -ne 0 ]; then
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        SUMMARY="$SUMMARY$label: reports found (counted as 1 failed)
"
    fi
}

asan_pass() {
    lua=$1
    LUA_NAME=$lua
    build=build/asan
    [ "$lua" = luajit ] && build=build/asan-luajit
    echo "== check-memory: AddressSanitizer + UBSan ($lua, $build)"
    if ! command -v clang >/dev/null 2>&1; then
        echo "clang not found (apt-get install clang libclang-rt-14-dev)"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    runtime=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
    if [ ! -f "$runtime" ]; then
        echo "ASan runtime not found ($runtime): apt-get install libclang-rt-14-dev"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    if ! make --no-print-directory LUA="$lua" BUILD="$build" CC=clang OPT=-O1 \
        SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" build; then
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    # The interpreters get the runtime through wrappers first on PATH (so the Lua child
    # processes of the specs get it too); asan-unpreload.so then drops LD_PRELOAD inside each
    # interpreter, so that sh, curl and nginx started by the specs run without it.
    mkdir -p "$OUT/bin"
    if ! cc -shared -fPIC -O1 -o "$OUT/asan-unpreload.so" tools/asan-unpreload.c; then
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    for interp in lua5.4 luajit; do
        real=$(command -v "$interp") || continue
        # A preload the spec asked for (spec/async_poll_spec.lua's getaddrinfo shim) comes after.
        printf '#!/bin/sh\nLD_PRELOAD="%s %s${LD_PRELOAD:+ $LD_PRELOAD}" exec %s "$@"\n' "$runtime" \
            "$OUT/asan-unpreload.so" "$real" \
            >"$OUT/bin/$interp"
        chmod +x "$OUT/bin/$interp"
    done
    run_suite "asan-$lua" CIO_BUILD_DIR="$build" CIO_LINT=0 CIO_SPECS="${ASAN_SPECS:-spec}" PATH="$OUT/bin:$PATH" \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$OUT/reports/asan-$lua" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$OUT/reports/ubsan-$lua"
    check_reports "asan-$lua" "$OUT/reports/asan-$lua.* $OUT/reports/ubsan-$lua.*"
}

valgrind_pass() {
    LUA_NAME=5.4
    echo "== check-memory: valgrind memcheck (lua5.4; $VALGRIND_SPECS)"
    if ! command -v valgrind >/dev/null 2>&1; then
        echo "valgrind not found (apt-get install valgrind)"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    if ! make --no-print-directory LUA=5.4 BUILD=build/valgrind OPT=-O1 build; then
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    run_suite valgrind CIO_BUILD_DIR=build/valgrind CIO_LINT=0 CIO_SPECS="$VALGRIND_SPECS" \
        CIO_BUSTED_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=40 --suppressions=$ROOT/tools/valgrind.supp --log-file=$OUT/reports/valgrind.%p.log"
    check_reports valgrind "$OUT/reports/valgrind.*.log"
}

for what in "$@"; do
    case $what in
        asan)
            asan_pass 5.4 ;;
        asan-luajit) asan_pass luajit ;;
        valgrind) valgrind_pass ;;
        *) echo "usage: $0 [asan] [asan-luajit] [valgrind]"; exit 2 ;;
    esac
done
printf '%s' "$SUMMARY"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
