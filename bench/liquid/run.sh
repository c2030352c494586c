#!/bin/sh
# Benchmark: customerio.liquid vs liquidjs rendering bench/liquid/receipt.liquid with
# receipt.json (a 50-item order), in the same run. Prints ms per render and the ratio for
# Lua 5.4 and LuaJIT. liquidjs is installed into bench/liquid/node_modules on first use
# (version pinned in bench/liquid/package.json).
#
#   sh bench/liquid/run.sh            # N=2000 renders per engine
#   N=10000 sh bench/liquid/run.sh
#
# Under bench/run.sh (make bench): uses $CIO_BENCH_NODE when set, and writes its figures as a
# JSON object to $CIO_BENCH_OUT: {status, renders, liquidjs_version, liquidjs_ms, lua54_ms,
# luajit_ms, speedup_lua54, speedup_luajit} (speedup = liquidjs time / our time).
set -e
cd "$(dirname "$0")/../.."
N=${N:-2000}
NODE=${CIO_BENCH_NODE:-node}
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"

ms_of() { sed -E 's/.*: ([0-9.]+) ms\/render.*/\1/'; }
speedup() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b }'; }

echo "liquid benchmark: receipt template, 50-item order, $N renders per engine"
js_ms=""
js_version=""
if command -v "$NODE" >/dev/null 2>&1; then
  if [ ! -d bench/liquid/node_modules/liquidjs ] && command -v npm >/dev/null 2>&1; then
    npm install --prefix bench/liquid --no-audit --no-fund --no-package-lock --silent >/dev/null 2>&1 || true
  fi
  if [ -d bench/liquid/node_modules/liquidjs ]; then
    js_line=$("$NODE" bench/liquid/bench.js "$N")
    echo "  $js_line"
    js_ms=$(echo "$js_line" | ms_of)
    js_version=$(echo "$js_line" | sed -E 's/^liquidjs ([^:]+):.*/\1/')
  else
    echo "  liquidjs: not installed (npm install --prefix bench/liquid failed); skipping"
  fi
else
  echo "  liquidjs: node not found; skipping"
fi

lua54_ms=""
luajit_ms=""
status=""
for lua in lua5.4 luajit; do
  if ! command -v "$lua" >/dev/null 2>&1; then
    echo "  $lua: not found; skipping"
    continue
  fi
  line=$("$lua" bench/liquid/bench.lua "$N")
  echo "  $line"
  ms=$(echo "$line" | ms_of)
  if [ "$lua" = lua5.4 ]; then lua54_ms=$ms; else luajit_ms=$ms; fi
  s=$(speedup "$js_ms" "$ms")
  if [ -n "$s" ]; then
    echo "    $lua vs liquidjs: ${s}x (liquidjs time / ours; above 1 is faster)"
    status="$status${status:+, }$lua ${s}x"
  fi
done
[ -n "$status" ] && status="$status liquidjs speed (receipt, 50 items)"
[ -n "$status" ] || status="not compared with liquidjs"

if [ -n "${CIO_BENCH_OUT:-}" ]; then
  num() { if [ -n "$1" ]; then printf '%s' "$1"; else printf 'null'; fi; }
  {
    printf '{"status":"%s","renders":%s,"template":"bench/liquid/receipt.liquid","liquidjs_version":"%s",' \
      "$status" "$N" "$js_version"
    printf '"liquidjs_ms":%s,"lua54_ms":%s,"luajit_ms":%s,' "$(num "$js_ms")" "$(num "$lua54_ms")" "$(num "$luajit_ms")"
    printf '"speedup_lua54":%s,"speedup_luajit":%s}\n' "$(num "$(speedup "$js_ms" "$lua54_ms")")" \
      "$(num "$(speedup "$js_ms" "$luajit_ms")")"
  } >"$CIO_BENCH_OUT"
fi
