-- Golden Liquid conformance: runs spec/fixtures/golden_liquid.json (jg-rp/golden-liquid, MIT,
-- the language-neutral Liquid suite; see spec/fixtures/golden_liquid.SOURCE.txt)
-- against customerio.liquid and prints the pass count by
-- group. Every case that is not skipped below must pass.
--
-- A case is valid (its output must equal `result`, or be one of `results`) or `invalid`
-- (parse or render must return nil, err). Cases tagged `strict2` are parsed with Shopify's
-- strict2 error mode (`error_mode = "strict2"`).

local liquid = require("customerio.liquid")
local json = require("customerio.liquid.json")

local GOLDEN = "spec/fixtures/golden_liquid.json"

-- Skipped by tag: features outside this engine's scope (no file system, no table output).
local SKIP_TAGS = {
  ["include tag"] = "include needs a file system; Customer.io reuses content with {{snippets.x}}",
  ["render tag"] = "render needs a file system; Customer.io reuses content with {{snippets.x}}",
  ["tablerow tag"] = "tablerow (HTML table output) is out of scope",
  ["ifchanged tag"] = "ifchanged is out of scope (not documented by Customer.io)",
  ["doc tag"] = "doc (Shopify theme documentation blocks) is out of scope",
}

-- Skipped by name (none at present; add `["name"] = "reason"` entries here).
local SKIP_CASES = {}

local function group_of(name)
  local parts = {}
  for part in name:gmatch("[^,]+") do parts[#parts + 1] = part:match("^%s*(.-)%s*$") end
  if parts[1] == "tags" or parts[1] == "filters" then return parts[1] .. ", " .. parts[2] end
  return parts[1]
end

local function load_cases()
  local f = io.open(GOLDEN, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  local doc = assert(json.decode(text, { ordered = true }))
  return doc.tests
end

local function skip_reason(case)
  if SKIP_CASES[case.name] then return SKIP_CASES[case.name] end
  for _, tag in ipairs(case.tags or {}) do
    if SKIP_TAGS[tag] then return SKIP_TAGS[tag] end
  end
  return nil
end

local function has_tag(case, tag)
  for _, t in ipairs(case.tags or {}) do
    if t == tag then return true end
  end
  return false
end

-- Runs one case; returns ok, detail.
local function run(case)
  local opts = { now = 1700000000 }
  if has_tag(case, "strict2") then opts.error_mode = "strict2" end
  local data = case.data
  if type(data) ~= "table" then data = {} end
  local tpl, err = liquid.parse(case.template, opts)
  local out
  if tpl then out, err = tpl:render(data, opts) end
  if case.invalid then
    if out == nil and err ~= nil then return true end
    return false, "expected an error, got " .. string.format("%q", tostring(out))
  end
  if out == nil then return false, "error: " .. tostring(err) end
  if case.results then
    for _, r in ipairs(case.results) do
      if out == r then return true end
    end
    return false, string.format("got %q, expected one of the results", out)
  end
  if out == case.result then return true end
  return false, string.format("got %q, expected %q", out, case.result)
end

local cases = load_cases()

describe("golden liquid", function()
  it("finds the golden suite (run from the project root)", function()
    assert.is_table(cases, "golden suite not found at " .. GOLDEN)
  end)
  if not cases then return end

  local counts, order = {}, {}
  local function count(group)
    local c = counts[group]
    if not c then
      c = { pass = 0, fail = 0, skip = 0 }
      counts[group] = c
      order[#order + 1] = group
    end
    return c
  end

  teardown(function()
    local lines = { "", "golden-liquid results by group (pass / applicable, skipped):" }
    local tp, tf, ts = 0, 0, 0
    table.sort(order)
    for _, g in ipairs(order) do
      local c = counts[g]
      tp, tf, ts = tp + c.pass, tf + c.fail, ts + c.skip
      lines[#lines + 1] = string.format("  %-34s %4d / %-4d%s", g, c.pass, c.pass + c.fail,
        c.skip > 0 and ("  skipped " .. c.skip) or "")
    end
    lines[#lines + 1] = string.format("  %-34s %4d / %-4d  skipped %d (of %d cases)", "TOTAL", tp, tp + tf, ts,
      tp + tf + ts)
    lines[#lines + 1] = "skipped:"
    local tags = {}
    for tag in pairs(SKIP_TAGS) do tags[#tags + 1] = tag end
    table.sort(tags)
    for _, tag in ipairs(tags) do lines[#lines + 1] = "  " .. tag .. ": " .. SKIP_TAGS[tag] end
    for name, reason in pairs(SKIP_CASES) do lines[#lines + 1] = "  " .. name .. ": " .. reason end
    io.stderr:write(table.concat(lines, "\n"), "\n")
  end)

  for _, case in ipairs(cases) do
    local group = group_of(case.name)
    local reason = skip_reason(case)
    if reason then
      count(group).skip = count(group).skip + 1
    else
      it(case.name, function()
        local ok, detail = run(case)
        local c = count(group)
        if ok then c.pass = c.pass + 1 else c.fail = c.fail + 1 end
        assert(ok, detail)
      end)
    end
  end
end)
