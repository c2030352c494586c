/*
 * liquid - customerio.liquid (pure Lua) on arbitrary template text, through an embedded
 * Lua 5.4 state whose executed lines are coverage for libFuzzer.
 *
 * The first input byte chooses options (strict parse, strict render); the rest is the
 * template. Each input is parsed, analysed (variables) and, when it parses, rendered against
 * a fixed context with small limits. Properties: nothing raises out of the public API, and no
 * failure has kind "internal" (an internal error is a Lua error inside the library: a bug);
 * rendering returns a string within max_output, or nil and an error object.
 *
 * Budget per input (issue 15: the limits must bound memory and CPU): parse + variables +
 * render within 1 s of CPU time and within 64 MiB of Lua heap growth (counted right after
 * the input, before a collection); fuzz/run.sh also gives this target a 2 s libFuzzer timeout,
 * a 512 MiB RSS limit and a 64 MiB limit per malloc.
 */
#include "fuzz.h"

static const char check[] =
  "local liquid = require('customerio.liquid')\n"
  "local KINDS = { syntax = true, undefined_variable = true, undefined_filter = true, argument = true, limit = true }\n"
  "local CONTEXT = {\n"
  "  customer = { first_name = 'Ada', id = 42, email = 'ada@example.com', tags = { 'a', 'b' }, score = 12.5,\n"
  "    created_at = 1700000000, nested = { list = { { n = 1 }, { n = 2 } } }, empty = '' },\n"
  "  trigger = { items = { { name = 'x', price = 1.25, qty = 2 }, { name = 'y', price = 3, qty = 0 } },\n"
  "    url = 'https://example.com/?a=1&b=<2>', when = '2024-01-02T03:04:05Z', flag = true, none = liquid.null },\n"
  "  event = { name = 'purchase', data = { total = 99.99 } },\n"
  "}\n"
  "local function ok_err(err, where)\n"
  "  if type(err) ~= 'table' or not KINDS[err.kind] then\n"
  "    error(where .. ' failed with ' .. (type(err) == 'table' and tostring(err.kind) or type(err)) .. ': ' .. tostring(err))\n"
  "  end\n"
  "  local _ = tostring(err) .. ''\n"
  "end\n"
  "local RENDER = { max_iterations = 2000, max_output = 65536, max_memory = 1048576, now = 1700000000 }\n"
  "local CPU_BUDGET, HEAP_BUDGET_KB = 1.0, 64 * 1024\n"
  "local function run(s)\n"
  "  local flags = s:byte(1) or 0\n"
  "  local src = s:sub(2)\n"
  "  local tpl, err = liquid.parse(src, { strict = flags % 2 == 1 })\n"
  "  if not tpl then ok_err(err, 'parse'); return end\n"
  "  local vars, verr = tpl:variables()\n"
  "  if type(vars) ~= 'table' then error('variables: ' .. tostring(verr)) end\n"
  "  RENDER.strict = (flags // 2) % 2 == 1\n"
  "  local out, rerr = tpl:render(CONTEXT, RENDER)\n"
  "  if out == nil then ok_err(rerr, 'render'); return end\n"
  "  if type(out) ~= 'string' then error('render returned a ' .. type(out)) end\n"
  "  if #out > RENDER.max_output then error('output over max_output: ' .. #out) end\n"
  "end\n"
  "return function(s)\n"
  "  local heap0, t0 = collectgarbage('count'), os.clock()\n"
  "  run(s)\n"
  "  local cpu, heap = os.clock() - t0, collectgarbage('count') - heap0\n"
  "  if cpu > CPU_BUDGET then error(('over the CPU budget: %.2f s'):format(cpu)) end\n"
  "  if heap > HEAP_BUDGET_KB then error(('over the heap budget: %d KiB'):format(heap)) end\n"
  "end\n";

static lua_State *L;
static int ref;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = fuzz_new_state(1);
    ref = fuzz_load_function(L, check);
  }
  fuzz_call(L, ref, data, size);
  fuzz_collect(L);
  return 0;
}
