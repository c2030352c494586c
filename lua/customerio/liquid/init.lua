--- Liquid templates in pure Lua: render Customer.io messages locally and find missing
-- variables before Customer.io does.
--
--     local liquid = require("customerio.liquid")
--     local tpl, err = liquid.parse("Hi {{ customer.first_name | default: 'there' }}")
--     local out, report = tpl:render({ customer = { first_name = "Ada" } })
--     local paths = liquid.variables("{{ trigger.reset_url }}")   --> { "trigger.reset_url" }
--
-- Errors are `nil, err`; `err` is a table `{ kind, message, line, column }` whose
-- `tostring` is `"line L, column C: message"` (see `customerio.liquid.errors`). Rendering
-- never raises: bad input to a filter, limits and strict-mode misses are errors too.
--
-- Modes: by default (lax) an undefined variable or filter renders as empty and is listed in
-- the report returned with the output; with `strict = true` it is an error with its line
-- and column. Uses guarded by a `default` filter or tested by `if`/`elsif`/`unless` are
-- never undefined.
--
-- Semantics are Shopify Liquid's (the golden-liquid suite passes): `10 | divided_by: 4` is
-- `2`, floats print as `5.0`. Data: JSON null (`customerio.core.null`, `cjson.null`,
-- `ngx.null`) is nil; arrays are tables with `{__jsontype = "array"}` or plain sequences;
-- hashes iterate in `__jsonorder` when present, else by sorted key. LuaJIT has no integer
-- subtype, so a whole float read from data (`5.0`) renders as `5` there.
-- @module customerio.liquid

local parser = require("customerio.liquid.parser")
local compiler = require("customerio.liquid.compiler")
local filters = require("customerio.liquid.filters")
local values = require("customerio.liquid.values")
local errors = require("customerio.liquid.errors")
local analysis = require("customerio.liquid.analysis")
local cio = require("customerio.liquid.cio")

local type, pcall, setmetatable, tostring, pairs, assert = type, pcall, setmetatable, tostring, pairs, assert
local concat = table.concat

local liquid = {}

--- JSON null as seen by templates.
liquid.null = values.null

--- Default limit on loop iterations per render.
liquid.MAX_ITERATIONS = 100000
--- Default limit on output bytes per render (5 MiB).
liquid.MAX_OUTPUT = 5 * 1024 * 1024

--- All filters known to templates (standard + Customer.io); name → spec.
liquid.filters = {}
for name, spec in pairs(filters.registry) do liquid.filters[name] = spec end
for name, spec in pairs(cio.filters) do liquid.filters[name] = spec end

--- Register a filter for all templates parsed afterwards.
-- @tparam string name
-- @tparam function fn `fn(input, arg1, ...)` returning the new value; raise with
--   `error("message")` for bad input
-- @tparam[opt] number min fewest positional arguments (default 0)
-- @tparam[opt] number max most positional arguments (default `min`)
function liquid.register_filter(name, fn, min, max)
  assert(type(name) == "string" and type(fn) == "function", "register_filter(name, fn[, min[, max]])")
  min = min or 0
  liquid.filters[name] = { fn = fn, min = min, max = max or min }
end

local Template = {}
Template.__index = Template
liquid.Template = Template

-- Convert anything raised during parse/render into an error object.
local function normalize(e, ctx)
  if errors.is(e) then
    if not e.line and ctx and ctx.at then
      e.line, e.column = ctx.at[1], ctx.at[2]
    end
    return e
  end
  local msg = tostring(e)
  if type(e) == "string" and msg:find("stack overflow", 1, true) then
    return errors.new("limit", "template too deeply nested", ctx and ctx.at and ctx.at[1], ctx and ctx.at and ctx.at[2])
  end
  local err = errors.new("internal", "internal error: " .. msg, ctx and ctx.at and ctx.at[1],
    ctx and ctx.at and ctx.at[2])
  return err
end

local function filter_table(extra)
  if not extra then return liquid.filters end
  local t = setmetatable({}, { __index = liquid.filters })
  for name, f in pairs(extra) do
    if type(f) == "function" then
      t[name] = { fn = f, min = 0, max = math.huge }
    else
      t[name] = f
    end
  end
  return t
end

--- Parse and compile a template.
-- @tparam string source the Liquid text
-- @tparam[opt] table opts `strict` (an unknown filter is an error), `filters` (extra
--   filters for this template: name → function or spec), `error_mode = "strict2"` (Shopify's
--   strictest parser: a `when` must list only values)
-- @treturn[1] Template
-- @treturn[2] nil
-- @treturn[2] table error `{kind, message, line, column}`
function liquid.parse(source, opts)
  if type(source) ~= "string" then
    return nil, errors.new("argument", "template source must be a string, got " .. type(source))
  end
  opts = opts or {}
  local ok, doc = pcall(parser.parse, source, opts)
  if not ok then return nil, normalize(doc) end
  local fn, info
  ok, fn, info = pcall(compiler.compile, doc, filter_table(opts.filters), opts)
  if not ok then return nil, normalize(fn) end
  return setmetatable({ source = source, doc = doc, fn = fn, info = info, strict = opts.strict }, Template)
end

--- Render with a context table.
-- @tparam[opt] table context the variables (`customer`, `trigger`, ...); not modified
-- @tparam[opt] table opts
--   `strict` (undefined variables and filters are errors; default: the parse option),
--   `max_iterations` (loop iterations, default `liquid.MAX_ITERATIONS`),
--   `max_output` (bytes, default `liquid.MAX_OUTPUT`),
--   `now` (Unix seconds used for `'now'`, default `os.time()`),
--   `timezone` (default zone of the `date` filter, default UTC),
--   `placeholders` (URLs for Customer.io tags, see `customerio.liquid.cio`)
-- @treturn[1] string the output
-- @treturn[1] table report `{ undefined = {{variable, line, column}...},
--   filters = {{filter, line, column}...}, tags = {{tag, line, column}...} }`
-- @treturn[2] nil
-- @treturn[2] table error
function Template:render(context, opts)
  opts = opts or {}
  local strict = opts.strict
  if strict == nil then strict = self.strict end
  local report = { undefined = {}, filters = {}, tags = {} }
  local ctx = {
    data = type(context) == "table" and context or {},
    locals = {},
    counters = {},
    lv = {},
    fl = {},
    out = {},
    n = 0,
    size = 0,
    steps = 0,
    max_steps = opts.max_iterations or liquid.MAX_ITERATIONS,
    max_output = opts.max_output or liquid.MAX_OUTPUT,
    strict = strict and true or false,
    report = report,
    seen = {},
    cycles = {},
    offsets = {},
    now = opts.now or os.time(),
    timezone = opts.timezone,
    placeholders = opts.placeholders,
    liquid = liquid,
    depth = 0,
  }
  for i = 1, #self.info.unknown_filters do
    local f = self.info.unknown_filters[i]
    if ctx.strict then
      return nil, errors.new("undefined_filter", "undefined filter '" .. f.filter .. "'", f.line, f.column)
    end
  end
  local ok, err = pcall(self.fn, ctx)
  if not ok then return nil, normalize(err, ctx) end
  return concat(ctx.out, "", 1, ctx.n), report
end

--- Variable paths the template reads from its context, without locals (see
-- `liquid.variables`).
-- @treturn table array of paths
-- @treturn table details: `{ {path, root, line, column, guarded}... }` for every reference
function Template:variables()
  return analysis.variables(self.doc)
end

--- Parse and render in one call.
-- @tparam string source
-- @tparam[opt] table context
-- @tparam[opt] table opts parse and render options
-- @treturn[1] string
-- @treturn[1] table report
-- @treturn[2] nil
-- @treturn[2] table error
function liquid.render(source, context, opts)
  local tpl, err = liquid.parse(source, opts)
  if not tpl then return nil, err end
  return tpl:render(context, opts)
end

--- The variable paths a template references, in order of first use, without its locals
-- (`assign`, `capture`, loop variables, `forloop`, counters). References in branches that
-- a given context would not take are included, so a missing `trigger.reset_url` is found
-- whatever the sample data.
-- @tparam string source
-- @treturn[1] table array of paths like `"trigger.reset_url"`, `"order.items"`
-- @treturn[1] table details (see `Template:variables`)
-- @treturn[2] nil
-- @treturn[2] table error
function liquid.variables(source)
  local tpl, err = liquid.parse(source)
  if not tpl then return nil, err end
  return tpl:variables()
end

--- Look a variable reference up in a render context, as rendering would (`size`, `first`
-- and `last` after a dot included).
-- @tparam table context the render context
-- @tparam table ref a reference from `Template:variables` details: `root` and `segments`
-- (each `{v = key, dot = boolean}`)
-- @return the value, or nil
-- @treturn boolean whether it was found (a value may be found and be nil)
function liquid.lookup(context, ref)
  local v = context[ref.root]
  if v == nil then return nil, false end
  for _, seg in ipairs(ref.segments) do
    local found
    v, found = compiler.index(v, seg.v, seg.dot)
    if not found then return nil, false end
  end
  return v, true
end

cio.install(liquid)

return liquid
