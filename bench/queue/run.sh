#!/bin/sh
# bench/queue/run.sh - customerio.Queue against customerio-node 5.2.0, in one run.
#
#   sh bench/queue/run.sh            (standalone: starts its own responder from bench/nginx.conf)
#   make bench                       (bench/run.sh calls it with the variables below)
#
# Measures, against a local nginx that answers 200 `{}` to everything:
#   - ours: EVENTS identify operations enqueued into customerio.Queue (Lua 5.4 and LuaJIT),
#     delivered as /api/v2/batch requests (500 KB batches, 4 in flight, each person's
#     operations in order: the default order = "batch"): events/s enqueued, and events/s
#     delivered (first enqueue to the end of flush);
#   - the same with a durable spool (`spool`, `spool_sync = 100` ms, in $TMPDIR): delivered
#     events/s with the spool / without, against the target of 0.5;
#   - customerio-node 5.2.0 on Node 22 sending the same identify events one request each,
#     32 in flight (bench/identify.js): events/s delivered;
# and prints the ratio delivered(ours) / delivered(Node) against the target of 20x.
# Each figure is the median of REPS runs. Writes a JSON object to $CIO_BENCH_OUT, else to
# bench/queue/results.json.
#
# Environment: CIO_BENCH_URL (responder root; unset = start one), CIO_BENCH_NODE (node binary),
# CIO_BENCH_ROOT, CIO_BENCH_REPS (3), CIO_BENCH_QUEUE_EVENTS (200000),
# CIO_BENCH_QUEUE_NODE_CALLS (4000), CIO_BENCH_OUT.
set -eu
set -f
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${CIO_BENCH_ROOT:-$(cd "$HERE/../.." && pwd)}
REPS=${CIO_BENCH_REPS:-3}
EVENTS=${CIO_BENCH_QUEUE_EVENTS:-200000}
NODE_CALLS=${CIO_BENCH_QUEUE_NODE_CALLS:-4000}
OUT=${CIO_BENCH_OUT:-$HERE/results.json}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cio-qbench.XXXXXXXX")
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
  started=$(lua5.4 "$ROOT/tools/nginx.lua" start --owner $$ --name cio-qbench --ready /__status "$ROOT/bench/nginx.conf") ||
    { say "bench/queue: nginx failed to start"; exit 1; }
  eval "$started"
  BASE=$NGINX_URL
fi
say "bench/queue: responder $BASE, $EVENTS events per run, $REPS runs"

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
    out=$(LUA_PATH="$LP" LUA_CPATH="$ROOT/build/$v/?.so;;" "$interp" "$HERE/deliver.lua" "$BASE" "$EVENTS") ||
      { say "  $interp: deliver.lua failed"; exit 1; }
    say "  queue $interp #$rep: $out"
    printf 'queue_%s %s\n' "$v" "$out" >>"$TMP/raw.txt"
    out=$(LUA_PATH="$LP" LUA_CPATH="$ROOT/build/$v/?.so;;" "$interp" "$HERE/deliver.lua" "$BASE" "$EVENTS" 2000 batch 100) ||
      { say "  $interp: deliver.lua with a spool failed"; exit 1; }
    say "  queue+spool $interp #$rep: $out"
    printf 'spool_%s %s\n' "$v" "$out" >>"$TMP/raw.txt"
  done
  if [ -n "$NODE" ] && [ -d "$ROOT/bench/node_modules/customerio-node" ]; then
    out=$(cd "$ROOT/bench" && "$NODE" identify.js "$BASE" "$NODE_CALLS" 32 200) ||
      { say "  node: identify.js failed"; exit 1; }
    say "  node (32 in flight) #$rep: $out"
    printf 'node %s\n' "$out" >>"$TMP/raw.txt"
  else
    say "  customerio-node not installed (bench/run.sh installs it into bench/node_modules): skipped"
  fi
  rep=$((rep + 1))
done

LUA_PATH="$LP" LUA_CPATH="$ROOT/build/5.4/?.so;;" lua5.4 "$HERE/report.lua" "$TMP/raw.txt" "$OUT"
