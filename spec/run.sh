#!/bin/sh
# Runs the busted suite under each Lua named on the command line, then luacheck, against one
# local test server (spec/support/server.lua) started for the whole run.
#
#   sh spec/run.sh 5.4 luajit        (5.1, 5.3, 5.4, luajit; default: 5.4)
#
# Each interpreter uses the C core from build/<lua>/. The last line of the output is always
# "N passed, N failed"; the exit status is non-zero when anything failed.
#
# For tools/check-memory.sh (sanitizers, valgrind), from the environment:
#   CIO_BUILD_DIR=build/asan     take the C core from there instead of build/<lua>/
#   CIO_BUSTED_WRAPPER="..."     words put before the interpreter (env ..., valgrind ...)
#   CIO_SPECS="spec/a_spec.lua"  spec files or directories to run (default: spec)
#   CIO_LINT=0                   skip luacheck

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)

[ $# -gt 0 ] || set -- 5.4

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=""
SERVER_PREFIX=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cio-run.XXXXXXXX") || exit 2

cleanup() {
    if [ -n "$SERVER_PREFIX" ]; then
        lua5.4 spec/support/server.lua stop "$SERVER_PREFIX" >/dev/null 2>&1
        SERVER_PREFIX=""
    fi
    rm -rf "$WORK"
}
# busted runs in the background so that a signal reaches this shell at once; pass it on.
BUSTED_PID=""
# shellcheck disable=SC2317 # called from the traps
on_signal() {
    [ -n "$BUSTED_PID" ] && kill -TERM "$BUSTED_PID" 2>/dev/null
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

finish() {
    cleanup
    trap - EXIT
    printf '%s' "$SUMMARY"
    echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
    [ "$TOTAL_FAILED" -eq 0 ]
    exit $?
}

# Nothing may leave the machine: no proxy for the local server, whatever the environment says.
NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
no_proxy="$NO_PROXY"
export NO_PROXY no_proxy

# The server: one nginx for every interpreter; it stops itself if this shell dies.
if ! lua5.4 spec/support/server.lua start $$ >"$WORK/server.env" 2>"$WORK/server.err"; then
    echo "test server failed to start:"
    cat "$WORK/server.err" "$WORK/server.env"
    TOTAL_FAILED=1
    finish
fi
while IFS= read -r line; do
    case $line in
        CIO_TEST_*=*) export "${line?}" ;;  # exports NAME=value from the line
    esac
done <"$WORK/server.env"
SERVER_PREFIX=$CIO_TEST_PREFIX
echo "test server: $CIO_TEST_URL $CIO_TEST_TLS_URL $CIO_TEST_TLS_WRONG_URL"

# Counts TAP lines of $1 into PASSED FAILED SKIPPED; sets PLAN=1 when the plan line is there.
count_tap() {
    PASSED=$(grep -c '^ok [0-9][0-9]* - ' "$1" | tr -d ' ')
    SKIPPED=$(grep -c '^ok [0-9][0-9]* - # SKIP' "$1" | tr -d ' ')
    FAILED=$(grep -c '^not ok [0-9][0-9]* - ' "$1" | tr -d ' ')
    PASSED=$((PASSED - SKIPPED))
    if grep -q '^1\.\.[0-9][0-9]*$' "$1"; then PLAN=1; else PLAN=0; fi
}

for lua in "$@"; do
    case $lua in
        luajit|jit) interp=luajit; dir=luajit ;;
        lua5.*) interp=$lua; dir=${lua#lua} ;;
        5.*) interp=lua$lua; dir=$lua ;;
        *) interp=$lua; dir=$lua ;;
    esac
    out="$WORK/busted-$dir.tap"
    echo "== busted on $interp"
    if ! command -v "$interp" >/dev/null 2>&1; then
        echo "$interp: not installed"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        SUMMARY="$SUMMARY$interp: not installed (counted as 1 failed)
"
        continue
    fi
    # shellcheck disable=SC2086 # the wrapper and the spec list are lists of words
    LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;$ROOT/?.lua;;" \
    LUA_CPATH="$ROOT/${CIO_BUILD_DIR:-build/$dir}/?.so;;" \
        ${CIO_BUSTED_WRAPPER:-} "$interp" /usr/bin/busted -o TAP --cpath="$ROOT/${CIO_BUILD_DIR:-build/$dir}/?.so" \
        ${CIO_SPECS:-spec} >"$out" 2>&1 &
    BUSTED_PID=$!
    wait "$BUSTED_PID"
    status=$?
    BUSTED_PID=""
    cat "$out"
    count_tap "$out"
    note=""
    if [ "$PLAN" -eq 0 ]; then
        # Crashed before the end of the suite: whatever ran, the run itself is a failure.
        FAILED=$((FAILED + 1))
        note=" (busted crashed, exit status $status)"
    elif [ "$status" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
        FAILED=1
        note=" (busted exit status $status)"
    fi
    TOTAL_PASSED=$((TOTAL_PASSED + PASSED))
    TOTAL_FAILED=$((TOTAL_FAILED + FAILED))
    SUMMARY="$SUMMARY$interp: $PASSED passed, $FAILED failed, $SKIPPED pending$note
"
done

[ "${CIO_LINT:-1}" = 0 ] && finish

# Lint: one test.
dirs=""
for d in lua spec examples bench tools; do
    [ -d "$d" ] && dirs="$dirs $d"
done
echo "== luacheck$dirs"
# shellcheck disable=SC2086
if luacheck -q --no-color $dirs >"$WORK/luacheck.out" 2>&1; then
    cat "$WORK/luacheck.out"
    TOTAL_PASSED=$((TOTAL_PASSED + 1))
    SUMMARY="${SUMMARY}luacheck: passed
"
else
    cat "$WORK/luacheck.out"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    SUMMARY="${SUMMARY}luacheck: failed
"
fi

finish
