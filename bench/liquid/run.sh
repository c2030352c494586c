#!/bin/sh
# Benchmark: customerio.liquid vs liquidjs on three templates over receipt.json (a 50-item
# order), all in the same run:
#   receipt  bench/liquid/receipt.liquid: a full receipt, assign/capture heavy
#   numeric  bench/liquid/numeric.liquid: numeric filters per item (times | round), cycle,
#            forloop.index, escape, date, map | join | truncate
#   digest   bench/liquid/digest.liquid: string filters (where, sort, split, replace,
#            url_encode, case changes), nested loops
# Prints ms per render and the ratio for Lua 5.4 and LuaJIT. liquidjs is installed into
# bench/liquid/node_modules on first use (version pinned in bench/liquid/package.json).
#
#   sh bench/liquid/run.sh            # N=2000 renders per engine and template
#   N=10000 TEMPLATES="numeric" sh bench/liquid/run.sh
#
# Under bench/run.sh (make bench): uses $CIO_BENCH_NODE when set, and writes its figures as a
# JSON object to $CIO_BENCH_OUT: {status, renders, liquidjs_version, templates = {name =
# {liquidjs_ms, lua54_ms, luajit_ms, speedup_lua54, speedup_luajit}}, and the receipt's
# figures at the top level: liquidjs_ms, lua54_ms, luajit_ms, speedup_lua54, speedup_luajit}
# (speedup = liquidjs time / our time).
set -e
cd "$(dirname "$0")/../.."
N=${N:-2000}
TEMPLATES=${TEMPLATES:-receipt numeric digest}
NODE=${CIO_BENCH_NODE:-node}
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"

ms_of() { sed -E 's/.*: ([0-9.]+) ms\/render.*/\1/'; }
speedup() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b }'; }
num() { if [ -n "$1" ]; then printf '%s' "$1"; else printf 'null'; fi; }

echo "liquid benchmark: templates $TEMPLATES over a 50-item order, $N renders per engine"
have_js=""
if command -v "$NODE" >/dev/null 2>&1; then
  if [ ! -d bench/liquid/node_modules/liquidjs ] && command -v npm >/dev/null 2>&1; then
    npm install --prefix bench/liquid --no-audit --no-fund --no-package-lock --silent >/dev/null 2>&1 || true
  fi
  if [ -d bench/liquid/node_modules/liquidjs ]; then
    have_js=1
  else
    echo "  liquidjs: not installed (npm install --prefix bench/liquid failed); skipping"
  fi
else
  echo "  liquidjs: node not found; skipping"
fi

js_version=""
status=""
per_template=""
top=""
for t in $TEMPLATES; do
  echo " $t:"
  js_ms=""
  if [ -n "$have_js" ]; then
    js_line=$("$NODE" bench/liquid/bench.js "$N" "$t")
    echo "  $js_line"
    js_ms=$(echo "$js_line" | ms_of)
    js_version=$(echo "$js_line" | sed -E 's/^liquidjs ([^ :]+).*/\1/')
  fi
  lua54_ms=""
  luajit_ms=""
  for lua in lua5.4 luajit; do
    if ! command -v "$lua" >/dev/null 2>&1; then
      echo "  $lua: not found; skipping"
      continue
    fi
    line=$("$lua" bench/liquid/bench.lua "$N" "$t")
    echo "  $line"
    ms=$(echo "$line" | ms_of)
    if [ "$lua" = lua5.4 ]; then lua54_ms=$ms; else luajit_ms=$ms; fi
    s=$(speedup "$js_ms" "$ms")
    if [ -n "$s" ]; then
      echo "    $lua vs liquidjs: ${s}x (liquidjs time / ours; above 1 is faster)"
      status="$status${status:+, }$t $lua ${s}x"
    fi
  done
  fields=$(printf '"liquidjs_ms":%s,"lua54_ms":%s,"luajit_ms":%s,"speedup_lua54":%s,"speedup_luajit":%s' \
    "$(num "$js_ms")" "$(num "$lua54_ms")" "$(num "$luajit_ms")" \
    "$(num "$(speedup "$js_ms" "$lua54_ms")")" "$(num "$(speedup "$js_ms" "$luajit_ms")")")
  per_template="$per_template${per_template:+,}\"$t\":{\"template\":\"bench/liquid/$t.liquid\",$fields}"
  [ "$t" = receipt ] && top="$fields"
done
[ -n "$status" ] && status="liquidjs speed: $status"
[ -n "$status" ] || status="not compared with liquidjs"

if [ -n "${CIO_BENCH_OUT:-}" ]; then
  {
    printf '{"status":"%s","renders":%s,"liquidjs_version":"%s",' "$status" "$N" "$js_version"
    [ -n "$top" ] && printf '%s,' "$top"
    printf '"templates":{%s}}\n' "$per_template"
  } >"$CIO_BENCH_OUT"
fi
