#!/bin/sh
# bench/run.sh - the benchmark suite behind `make bench` (which builds both C cores first).
#
# Starts its own nginx responder on 127.0.0.1 (tools/nginx.lua: random free port, bench/nginx.conf,
# `return 200 '{}'`), then
# measures side by side, in one run:
#   - sequential identify calls/s over keep-alive: our TrackClient on Lua 5.4 and LuaJIT (and
#     the C core alone, as a floor), customerio-node 5.2.0 on Node 22, one curl process reusing
#     one connection for N URLs, and wrk -c1 (the server + loopback limit);
#   - 32 requests in flight: customerio-node, wrk -c32, ours when an async API exists;
#   - client CPU per call (user + sys of the client process / calls) and peak RSS;
#   - JSON encode/decode against lua-cjson on both interpreters (bench/json.lua);
#   - the other suites, bench/<name>/run.sh (today queue, liquid, async; see BENCHMARKS.md
#     for the contract they follow).
# Every figure is the median of CIO_BENCH_REPS runs (default 3). bench/report.lua prints the
# table and writes bench/results.json. Method and latest results: BENCHMARKS.md.
#
# Knobs (environment): CIO_BENCH_CALLS (20000 identify calls per run), CIO_BENCH_NODE_CALLS
# (CALLS / 4 for customerio-node), CIO_BENCH_REPS (3),
# CIO_BENCH_WRK_SECONDS (2), CIO_BENCH_JSON_SECONDS (0.2 per JSON sample),
# CIO_BENCH_OUT (bench/results.json), CIO_BENCH_ONLY (space-separated subset of:
# seq conc json ext), CIO_BENCH_NO_INSTALL=1 (never apt-get/npm install; fail instead).
set -eu
set -f # no globbing: the LUA_PATH templates below hold '?'
cd "$(dirname "$0")/.."
ROOT=$(pwd)
case "$ROOT" in *[[:space:]]*) printf 'bench: the checkout path must not contain spaces: %s\n' "$ROOT" >&2; exit 1 ;; esac
BENCH=$ROOT/bench

CALLS=${CIO_BENCH_CALLS:-20000}
# customerio-node is ~10x slower per call: fewer calls keep its runs at a few seconds each.
NODE_CALLS=${CIO_BENCH_NODE_CALLS:-$((CALLS / 4))}
REPS=${CIO_BENCH_REPS:-3}
WRK_SECONDS=${CIO_BENCH_WRK_SECONDS:-2}
JSON_SECONDS=${CIO_BENCH_JSON_SECONDS:-0.2}
OUT=${CIO_BENCH_OUT:-$BENCH/results.json}
ONLY=${CIO_BENCH_ONLY:-seq conc json ext}
INFLIGHT=32
WARMUP=200
AUTH="Basic c2l0ZS1pZDphcGkta2V5" # base64("site-id:api-key"), what every client sends

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
wants() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------- tools
# command -> Debian package. Installed on demand when we are root (as CI is).
need_pkgs=""
for pair in nginx:nginx wrk:wrk curl:curl lua5.4:lua5.4 luajit:luajit2 npm:npm; do
  cmd=${pair%%:*}
  command -v "$cmd" >/dev/null 2>&1 || need_pkgs="$need_pkgs ${pair#*:}"
done
[ -x /usr/bin/time ] || need_pkgs="$need_pkgs time"
[ -f /usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so ] || lua5.4 -e 'require("cjson")' >/dev/null 2>&1 ||
  need_pkgs="$need_pkgs lua-cjson"
if [ -n "$need_pkgs" ]; then
  if [ "${CIO_BENCH_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages:$need_pkgs (apt-get install -y$need_pkgs)"
  fi
  say "bench: installing$need_pkgs"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086 # a list of package names
  { apt-get update -q && apt-get install -y -q --no-install-recommends $need_pkgs; } >/tmp/cio-bench-apt.log 2>&1 ||
    { tail -20 /tmp/cio-bench-apt.log; die "apt-get install failed"; }
fi

for v in 5.4 luajit; do
  [ -f "$ROOT/build/$v/customerio/core.so" ] || say "bench: warning: build/$v/customerio/core.so missing (make bench builds both cores)"
done

# Node 22 from npm's node@22 package into bench/node/, customerio-node 5.2.0 into bench/node_modules/.
NODE_DIR=$BENCH/node
NODE=$NODE_DIR/node_modules/node/bin/node
if ! { [ -x "$NODE" ] && "$NODE" --version 2>/dev/null | grep -q '^v22\.'; }; then
  [ "${CIO_BENCH_NO_INSTALL:-0}" = 1 ] && die "Node 22 missing in bench/node"
  say "bench: installing Node 22 (npm package node@22) into bench/node"
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-package-lock node@22 >"$NODE_DIR/install.log" 2>&1 ||
    { tail -20 "$NODE_DIR/install.log"; die "npm install node@22 failed"; }
  "$NODE" --version | grep -q '^v22\.' || die "bench/node did not give Node 22"
fi
NODE_BIN_DIR=$(dirname "$NODE")
cio_node_version() {
  "$NODE" -e 'console.log(require(process.argv[1] + "/node_modules/customerio-node/package.json").version)' "$BENCH" 2>/dev/null || true
}
if [ "$(cio_node_version)" != "5.2.0" ]; then
  [ "${CIO_BENCH_NO_INSTALL:-0}" = 1 ] && die "customerio-node 5.2.0 missing in bench/node_modules"
  say "bench: installing customerio-node 5.2.0 into bench/node_modules (with Node 22's engine)"
  # npm runs under Node 22 (first on PATH), so the package's engines (node >= 22) are met.
  (cd "$BENCH" && PATH="$NODE_BIN_DIR:$PATH" npm install --no-audit --no-fund --no-package-lock \
    --engine-strict=false >"$NODE_DIR/install-cio.log" 2>&1) ||
    { tail -20 "$NODE_DIR/install-cio.log"; die "npm install customerio-node failed"; }
  [ "$(cio_node_version)" = "5.2.0" ] || die "customerio-node in bench/node_modules is not 5.2.0: $(cio_node_version)"
fi

# ---------------------------------------------------------------- responder
TMP=$(mktemp -d /tmp/cio-bench.XXXXXX)
RAW=$TMP/raw.jsonl
: >"$RAW"
NGINX_PREFIX=""
cleanup() {
  [ -z "$NGINX_PREFIX" ] || lua5.4 "$ROOT/tools/nginx.lua" stop "$NGINX_PREFIX" QUIT
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tools/nginx.lua: free port, fresh prefix, stopped at exit or when this shell dies.
started=$(lua5.4 "$ROOT/tools/nginx.lua" start --owner $$ --name cio-bench --ready /__status "$BENCH/nginx.conf") ||
  die "nginx did not start"
eval "$started"
BASE=$NGINX_URL
curl -fsS -X PUT --data '{}' "$BASE/api/v1/customers/x" | grep -q '{}' || die "responder does not answer"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  say "bench: warning: the machine is busy (load average $LOAD_START on $(nproc) cores): figures will be low and noisy"
fi
RUN_T0=$(date +%s)
SECTION=""
SECTION_T0=$RUN_T0
: >"$TMP/durations.txt"
# section NAME: close the running section (its seconds go to results.json) and open another.
section() {
  t=$(date +%s)
  [ -z "$SECTION" ] || printf '%s %s\n' "$SECTION" $((t - SECTION_T0)) >>"$TMP/durations.txt"
  SECTION=$1
  SECTION_T0=$t
}
say "bench: responder on $BASE (nginx pid $NGINX_PID), $CALLS calls per run, median of $REPS"

# "accepts requests" from stub_status; the probe itself is one connection and one request.
probe() { curl -fsS "$BASE/__status" | awk 'NR == 3 { print $1, $3 }'; }
now_ns() { date +%s%N; }

# Identify request body (JSON.stringify of bench/identify.js's attributes) for curl and wrk.
"$NODE" "$BENCH/identify.js" --body >"$TMP/body.json"

# run_client ID REP CMD... : run a client under /usr/bin/time and record one JSON line.
run_client() {
  id=$1
  rep=$2
  shift 2
  before=$(probe)
  t0=$(now_ns)
  if ! /usr/bin/time -f "%U %S %M" -o "$TMP/time.out" "$@" >"$TMP/out.txt" 2>"$TMP/err.txt"; then
    cat "$TMP/err.txt" >&2
    die "$id failed: $*"
  fi
  t1=$(now_ns)
  after=$(probe)
  # shellcheck disable=SC2086,SC2046 # split the numbers into $1..$7
  set -- $before $after $(tail -1 "$TMP/time.out")
  conns=$(($3 - $1 - 1))
  reqs=$(($4 - $2 - 1))
  out=$(tail -1 "$TMP/out.txt")
  case "$out" in '{"'*) ;; *) out=null ;; esac
  printf '{"id":"%s","rep":%s,"wall_ns":%s,"user":%s,"sys":%s,"rss_kb":%s,"conns":%s,"requests":%s,"out":%s}\n' \
    "$id" "$rep" $((t1 - t0)) "$5" "$6" "$7" "$conns" "$reqs" "$out" >>"$RAW"
  say "  $id #$rep: $(printf '%s' "$out" | cut -c1-150) conns=$conns requests=$reqs cpu=$5+$6s rss=${7}kB"
}

# `env` prefixes giving each interpreter our modules and its own build of the C core.
LP="LUA_PATH=$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
ENV54="env $LP LUA_CPATH=$ROOT/build/5.4/?.so;;"
ENVJIT="env $LP LUA_CPATH=$ROOT/build/luajit/?.so;;"

# curl command line: one process, N URLs in a config file, so one connection serves them all.
curl_config() { # curl_config N FILE
  {
    printf 'silent\nshow-error\nfail\nrequest = "PUT"\ndata-binary = "@%s"\n' "$TMP/body.json"
    printf 'header = "Authorization: %s"\nheader = "Content-Type: application/json"\n' "$AUTH"
    printf 'header = "User-Agent: curl-bench"\nheader = "Expect:"\n'
    awk -v n="$1" -v base="$BASE" 'BEGIN { for (i = 1; i <= n; i++) printf "url = \"%s/api/v1/customers/user-%d\"\n", base, i }'
  } >"$2"
}

run_wrk() { # run_wrk ID REP CONNECTIONS
  id=$1
  rep=$2
  nconn=$3
  before=$(probe)
  CIO_BENCH_BODY="$TMP/body.json" CIO_BENCH_AUTH="$AUTH" \
    wrk -t1 -c"$nconn" -d"${WRK_SECONDS}s" -s "$BENCH/wrk.lua" "$BASE/api/v1/customers/user-1" >"$TMP/wrk.txt" 2>&1 ||
    { cat "$TMP/wrk.txt" >&2; die "wrk failed"; }
  after=$(probe)
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.txt")
  lat=$(awk '$1 == "Latency" { print $2 }' "$TMP/wrk.txt")
  errs=$(awk '/Non-2xx|Socket errors/ { print }' "$TMP/wrk.txt")
  [ -z "$errs" ] || { cat "$TMP/wrk.txt" >&2; die "wrk saw errors"; }
  # shellcheck disable=SC2086
  set -- $before $after
  printf '{"id":"%s","rep":%s,"conns":%s,"out":{"rps":%s,"latency":"%s"}}\n' "$id" "$rep" $(($3 - $1 - 1)) "$rps" "$lat" >>"$RAW"
  say "  $id #$rep: $rps req/s (latency avg $lat)"
}

# Which of our pieces can run yet: the TrackClient (client mode) and the C core's JSON (core mode).
can() { # can 5.4|luajit WHAT
  if [ "$1" = luajit ]; then e=$ENVJIT; i=luajit; else e=$ENV54; i=lua5.4; fi
  case $2 in
    client) $e $i -e 'require("customerio").TrackClient.new("s", "k", { url = "http://127.0.0.1:1/api/v1" })' ;;
    core) $e $i -e 'assert(require("customerio.core").json_encode({}))' ;;
    async) $e $i -e 'assert(require("customerio.core").async_new); require("customerio.async")' ;;
  esac >/dev/null 2>"$TMP/can.err" || { say "  (skipping $2 on $i: $(head -1 "$TMP/can.err"))"; return 1; }
}
ours() { # ours ID REP 5.4|luajit SCRIPT ARGS... : a Lua client under that interpreter
  if [ "$3" = luajit ]; then e=$ENVJIT; i=luajit; else e=$ENV54; i=lua5.4; fi
  o_id=$1
  o_rep=$2
  shift 3
  # shellcheck disable=SC2086 # $e is "env VAR=... VAR=..."
  run_client "$o_id" "$o_rep" $e $i "$@"
}

if wants seq; then
  section sequential
  say "bench: sequential identify over keep-alive"
  OURS=""
  for v in 5.4 luajit; do
    for m in client core; do
      if can $v $m; then OURS="$OURS $v:$m"; fi
    done
  done
  curl_config "$CALLS" "$TMP/curl-n.cfg"
  curl_config 1 "$TMP/curl-1.cfg"
  rep=1
  while [ $rep -le "$REPS" ]; do
    run_wrk seq.wrk "$rep" 1
    run_client seq.curl1 "$rep" curl --config "$TMP/curl-1.cfg"
    run_client seq.curl "$rep" curl --config "$TMP/curl-n.cfg"
    for vm in $OURS; do
      v=${vm%:*}
      m=${vm#*:}
      id=seq.lua54
      [ "$v" = luajit ] && id=seq.luajit
      [ "$m" = core ] && id=${id}_core
      # The C-core-alone runs are a diagnostic: half the calls are enough.
      n=$CALLS
      [ "$m" = core ] && n=$((CALLS / 2))
      ours "$id" "$rep" "$v" "$BENCH/identify.lua" "$BASE" "$n" "$WARMUP" "$m"
      # The Lua layer and JSON alone, over a transport that answers at once (no I/O).
      [ "$m" = client ] && ours "${id}_layer" "$rep" "$v" "$BENCH/identify.lua" "$BASE" $((CALLS * 2)) "$WARMUP" layer
    done
    run_client seq.node "$rep" "$NODE" "$BENCH/identify.js" "$BASE" "$NODE_CALLS" 1 "$WARMUP"
    rep=$((rep + 1))
  done
fi

if wants conc; then
  section concurrent
  say "bench: $INFLIGHT requests in flight"
  ASYNC=""
  for v in 5.4 luajit; do
    if can $v async; then ASYNC="$ASYNC $v"; fi
  done
  rep=1
  while [ $rep -le "$REPS" ]; do
    run_wrk conc.wrk "$rep" "$INFLIGHT"
    run_client conc.node "$rep" "$NODE" "$BENCH/identify.js" "$BASE" "$NODE_CALLS" "$INFLIGHT" "$WARMUP"
    # Ours through the async API (customerio.async: one libcurl multi handle, customerio.poll).
    for v in $ASYNC; do
      id=conc.lua54
      [ "$v" = luajit ] && id=conc.luajit
      ours "$id" "$rep" "$v" "$BENCH/identify_async.lua" "$BASE" $((CALLS / 2)) "$WARMUP" "$INFLIGHT"
    done
    rep=$((rep + 1))
  done
fi

if wants json; then
  section json
  say "bench: JSON encode/decode against lua-cjson"
  for v in 5.4 luajit; do
    if [ $v = luajit ]; then interp=luajit; envv=$ENVJIT; else interp=lua5.4; envv=$ENV54; fi
    $envv $interp "$BENCH/json.lua" "$JSON_SECONDS" >"$TMP/json-$v.json" || die "bench/json.lua failed on $interp"
    say "  $interp: $(cat "$TMP/json-$v.json")"
  done
fi

# Other engineers' suites: bench/<name>/run.sh gets the responder URL, Node 22, the Lua paths,
# and writes a JSON object of its figures to CIO_BENCH_OUT (or to bench/<name>/results.json).
if wants ext; then
  set +f
  suites=$(for d in "$BENCH"/*/run.sh; do [ -f "$d" ] && basename "$(dirname "$d")"; done)
  set -f
  for name in $suites; do
    script=$BENCH/$name/run.sh
    [ -f "$script" ] || continue
    section "$name"
    say "bench: $name (bench/$name/run.sh)"
    status=0
    CIO_BENCH_URL=$BASE CIO_BENCH_OUT=$TMP/ext-$name.json CIO_BENCH_NODE=$NODE CIO_BENCH_NODE_DIR=$NODE_BIN_DIR \
      CIO_BENCH_ROOT=$ROOT CIO_BENCH_REPS=$REPS \
      sh "$script" >&2 || status=$?
    if [ ! -s "$TMP/ext-$name.json" ] && [ -s "$BENCH/$name/results.json" ]; then
      cp "$BENCH/$name/results.json" "$TMP/ext-$name.json"
    fi
    [ $status -eq 0 ] || printf '{"error":"bench/%s/run.sh exited with status %s"}\n' "$name" "$status" >"$TMP/ext-$name.err.json"
  done
fi

section ""
printf 'total %s\n' $(($(date +%s) - RUN_T0)) >>"$TMP/durations.txt"

CIO_BENCH_TMP=$TMP CIO_BENCH_NODE=$NODE CIO_BENCH_CALLS=$CALLS CIO_BENCH_NODE_CALLS=$NODE_CALLS CIO_BENCH_REPS=$REPS CIO_BENCH_INFLIGHT=$INFLIGHT \
  CIO_BENCH_WRK_SECONDS=$WRK_SECONDS CIO_BENCH_BASE=$BASE CIO_BENCH_LOAD_START=$LOAD_START CIO_BENCH_ROOT=$ROOT \
  lua5.4 "$BENCH/report.lua" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
say "bench: wrote ${OUT#"$ROOT"/}"
