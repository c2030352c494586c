#!/bin/sh
# bench/async/run.sh - the async API (customerio.async + customerio.poll, one libcurl multi
# handle) against customerio-node 5.2.0, both with 32 requests in flight.
#
#   sh bench/async/run.sh            (standalone: starts its own responder from bench/nginx.conf)
#   make bench                       (bench/run.sh calls it with the variables below)
#
# Measures identify calls/s against a local nginx answering 200 `{}`:
#   - ours on Lua 5.4 and LuaJIT (bench/async.lua), in two modes: "wait" (customerio.poll(100),
#     a host that may block) and "frame" (customerio.poll(0) in a loop, a game loop; also the
#     mean and max time a poll takes from the frame);
#   - customerio-node 5.2.0 on Node 22 (bench/identify.js, 32 in flight);
# and prints ours / Node against the target of 5x. Each figure is the median of REPS runs.
# Writes a JSON object to $CIO_BENCH_OUT, else to bench/async/results.json.
#
# Then the time one customerio.poll(0) takes in a 60 fps loop with 50 calls kept in flight for
# 300 frames (bench/async/poll.lua; budget 2 ms): worst and 99th percentile, wall clock and
# CPU time, on Lua 5.4 and LuaJIT; and the same 50 calls to a name whose getaddrinfo stalls
# 3 s (an LD_PRELOAD shim, spec/support/stall_dns.c) with a 1 s timeout: the poll figures and
# when the last call ended. Written to $CIO_BENCH_POLL_OUT, else bench/async/poll_results.json.
#
# Environment: CIO_BENCH_URL (responder root; unset = start one), CIO_BENCH_NODE (node binary),
# CIO_BENCH_ROOT, CIO_BENCH_REPS (3), CIO_BENCH_ASYNC_CALLS (20000),
# CIO_BENCH_ASYNC_NODE_CALLS (4000), CIO_BENCH_OUT.
set -eu
set -f
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${CIO_BENCH_ROOT:-$(cd "$HERE/../.." && pwd)}
REPS=${CIO_BENCH_REPS:-3}
CALLS=${CIO_BENCH_ASYNC_CALLS:-20000}
NODE_CALLS=${CIO_BENCH_ASYNC_NODE_CALLS:-4000}
INFLIGHT=32
OUT=${CIO_BENCH_OUT:-$HERE/results.json}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cio-abench.XXXXXXXX")
NGINX_PREFIX=""

say() { printf '%s\n' "$*" >&2; }
cleanup() {
  [ -z "$NGINX_PREFIX" ] || lua5.4 "$ROOT/tools/nginx.lua" stop "$NGINX_PREFIX"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The responder: the harness's, or one of our own (tools/nginx.lua, bench/nginx.conf).
BASE=${CIO_BENCH_URL:-}
if [ -z "$BASE" ]; then
  started=$(lua5.4 "$ROOT/tools/nginx.lua" start --owner $$ --name cio-abench --ready /__status "$ROOT/bench/nginx.conf") ||
    { say "bench/async: nginx failed to start"; exit 1; }
  eval "$started"
  BASE=$NGINX_URL
fi
say "bench/async: responder $BASE, $CALLS calls per run ($NODE_CALLS for Node), $INFLIGHT in flight, $REPS runs"

NODE=${CIO_BENCH_NODE:-$ROOT/bench/node/node_modules/node/bin/node}
[ -x "$NODE" ] || NODE=$(command -v node || true)

LP="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
: >"$TMP/raw.txt"
rep=1
while [ $rep -le "$REPS" ]; do
  for v in 5.4 luajit; do
    interp=lua5.4
    [ $v = luajit ] && interp=luajit
    if [ ! -f "$ROOT/build/$v/customerio/core.so" ]; then
      say "  $interp: build/$v/customerio/core.so missing (make LUA=$v), skipped"
      continue
    fi
    for mode in wait frame; do
      out=$(LUA_PATH="$LP" LUA_CPATH="$ROOT/build/$v/?.so;;" "$interp" "$ROOT/bench/async.lua" \
        "$BASE" "$CALLS" 200 "$INFLIGHT" "$mode") || { say "  $interp: bench/async.lua failed"; exit 1; }
      say "  $interp $mode #$rep: $out"
      printf 'ours_%s_%s %s\n' "$(echo "$v" | tr -d .)" "$mode" "$out" >>"$TMP/raw.txt"
    done
  done
  if [ -n "$NODE" ] && [ -d "$ROOT/bench/node_modules/customerio-node" ]; then
    out=$(cd "$ROOT/bench" && "$NODE" identify.js "$BASE" "$NODE_CALLS" "$INFLIGHT" 200) ||
      { say "  node: identify.js failed"; exit 1; }
    # identify.js prints calls and seconds; add rps for the report.
    out=$(printf '%s' "$out" | awk '{ c = $0; sub(/.*"calls":/, "", c); sub(/,.*/, "", c);
      s = $0; sub(/.*"seconds":/, "", s); sub(/[,}].*/, "", s); sub(/}$/, "", $0);
      printf "%s,\"rps\":%.3f}\n", $0, c / s }')
    say "  node (32 in flight) #$rep: $out"
    printf 'node %s\n' "$out" >>"$TMP/raw.txt"
  else
    say "  customerio-node not installed (bench/run.sh installs it into bench/node_modules): skipped"
  fi
  rep=$((rep + 1))
done

LUA_PATH="$LP" LUA_CPATH="$ROOT/build/5.4/?.so;;" lua5.4 "$ROOT/bench/async.lua" --report "$TMP/raw.txt" "$OUT"
say "bench/async: wrote $OUT"

# poll(0) time per frame. The host name goes through the shim (x.test is 127.0.0.1).
POLL_OUT=${CIO_BENCH_POLL_OUT:-$HERE/poll_results.json}
PORT_OF_BASE=$(printf '%s' "$BASE" | sed -n 's#^http://[^:/]*:\([0-9]*\).*#\1#p')
SHIM=$TMP/stall_dns.so
if [ -n "$PORT_OF_BASE" ] && cc -shared -fPIC -o "$SHIM" "$ROOT/spec/support/stall_dns.c" -ldl 2>/dev/null; then
  say "bench/async: poll(0) in a 60 fps loop, 50 calls in flight, budget 2 ms"
  printf '{' >"$POLL_OUT"
  sep=""
  for v in 5.4 luajit; do
    interp=lua5.4
    [ $v = luajit ] && interp=luajit
    [ -f "$ROOT/build/$v/customerio/core.so" ] || continue
    for case in steady stalled_dns; do
      if [ $case = steady ]; then
        host=steady.test timeout=10000 frames=300
      else
        host=stall.test timeout=1000 frames=0
      fi
      out=$(CIO_STALL_DNS_HOSTS=stall.test CIO_STALL_DNS_SECONDS=3 LD_PRELOAD="$SHIM" LUA_PATH="$LP" \
        LUA_CPATH="$ROOT/build/$v/?.so;;" "$interp" "$ROOT/bench/async/poll.lua" \
        "http://$host:$PORT_OF_BASE/api/v1" 50 $timeout 2 60 $frames) || { say "  $interp: poll.lua failed"; exit 1; }
      json=$(printf '%s\n' "$out" | awk -v key="$(echo "$v" | tr -d .)_$case" '
        $1 == "polls" { n = $2; wmax = $3; wp99 = $4; wmed = $5 }
        $1 == "cpu" { cmax = $2; cp99 = $3; cmed = $4 }
        $1 == "call" { calls++; if ($2 > last) last = $2; if ($3 != "ok") failed++ }
        END { printf "\"%s\":{\"polls\":%d,\"wall_max_ms\":%s,\"wall_p99_ms\":%s,\"wall_median_ms\":%s,", key, n, wmax, wp99, wmed
              printf "\"cpu_max_ms\":%s,\"cpu_p99_ms\":%s,\"cpu_median_ms\":%s,\"calls\":%d,\"failed\":%d,\"last_call_ms\":%s}", cmax, cp99, cmed, calls, failed + 0, last }')
      say "  $interp $case: $json"
      printf '%s%s' "$sep" "$json" >>"$POLL_OUT"
      sep=","
    done
  done
  printf '}\n' >>"$POLL_OUT"
  say "bench/async: wrote $POLL_OUT"
else
  say "bench/async: no cc or no port in $BASE: poll(0) figures skipped"
fi
