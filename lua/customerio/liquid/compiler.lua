--- Compile a parsed template into Lua closures.
--
-- Each node becomes a function `f(ctx)` that appends to the render buffer (`ctx.out`,
-- `ctx.n`) and returns `"break"` / `"continue"` to interrupt loops; each expression becomes
-- `e(ctx) -> value`. Loop variables are resolved at compile time to slots (`ctx.lv[slot]`),
-- so a lookup inside a loop costs one table index. Names that are never assigned in the
-- template are read straight from the data.
--
-- The render context (`ctx`) is described in `customerio.liquid` (`Template:render`).
-- @module customerio.liquid.compiler

local values = require("customerio.liquid.values")
local number = require("customerio.liquid.number")
local errors = require("customerio.liquid.errors")
local text = require("customerio.liquid.text")
local budget = require("customerio.liquid.budget")

local type, getmetatable, setmetatable, tostring = type, getmetatable, setmetatable, tostring
local floor, min, max = math.floor, math.min, math.max
local concat = table.concat
local unpack = table.unpack or unpack

local kind, truthy, equals, compare = values.kind, values.truthy, values.equals, values.compare
local output_of, is_empty, is_blank, contains = values.output, values.is_empty, values.is_blank, values.contains
local NULL, ARRAY = values.null, values.ARRAY
local FLOAT = number.FLOAT

local M = {}

local charge, charge_result, ITEM = budget.charge, budget.result, budget.ITEM
local RANGE = values.RANGE
local range = values.range

-- ---------------------------------------------------------------------------------------
-- Runtime helpers


local function limit_error(ctx, message)
  local at = ctx.at
  errors.raise("limit", message, at and at[1], at and at[2])
end

local function output_exceeded(ctx)
  limit_error(ctx, "output limit exceeded: more than " .. ctx.max_output .. " bytes (raise with max_output)")
end

local function append(ctx, s)
  local n = ctx.n + 1
  ctx.n = n
  ctx.out[n] = s
  local size = ctx.size + #s
  ctx.size = size
  if size > ctx.max_output then output_exceeded(ctx) end
end
M.append = append

-- Look up `key` in `obj`. `dot` is true for `.name` lookups, which may be `size`, `first`
-- or `last`. Returns value, found.
local function index(obj, key, dot)
  local k = kind(obj)
  local kt = type(key)
  if kt == "table" and getmetatable(key) == FLOAT then key, kt = key[1], "number" end
  if k == "hash" then
    local v = obj[key]
    if v ~= nil then return v, true end
    if dot then
      if key == "size" then return values.hash_size(obj), true end
      if key == "first" then
        local keys = values.hash_keys(obj)
        if keys[1] == nil then return nil, true end
        return setmetatable({ keys[1], obj[keys[1]] }, ARRAY), true
      end
    end
    return nil, false
  elseif k == "array" or k == "range" then
    local len = values.size(obj)
    if kt == "number" then
      if key ~= floor(key) then return nil, false end
      local i = key
      if i < 0 then i = len + i end
      if i < 0 or i >= len then return nil, false end
      if k == "range" then return number.int(obj[1] + i), true end
      return obj[i + 1], true
    end
    if dot then
      if key == "size" then return len, true end
      if key == "first" then
        if len == 0 then return nil, true end
        if k == "range" then return obj[1], true end
        return obj[1], true
      end
      if key == "last" then
        if len == 0 then return nil, true end
        if k == "range" then return obj[2], true end
        return obj[len], true
      end
    end
    return nil, false
  elseif k == "string" then
    if dot then
      if key == "size" then return text.len(obj), true end
      if key == "first" then return obj:match("^" .. text.CHAR) or "", true end
      if key == "last" then return text.last_char(obj), true end
    end
    return nil, false
  end
  return nil, false
end
M.index = index

-- An undefined variable or filter: an error in strict mode, else recorded in the report
-- (once per place in the template).
local function undefined(ctx, node, what, name, list_name)
  if ctx.strict then
    local e = errors.new("undefined_" .. what, "undefined " .. what .. " '" .. name .. "'", node.line, node.col)
    e[what] = name
    error(e, 0)
  end
  local seen = ctx.seen
  if not seen[node] then
    seen[node] = true
    local list = ctx.report[list_name]
    list[#list + 1] = { [what] = name, line = node.line, column = node.col }
  end
end

local function missing(ctx, ref)
  undefined(ctx, ref, "variable", ref.text, "undefined")
  return nil
end

local function unknown_filter(ctx, f)
  undefined(ctx, f, "filter", f.name, "filters")
end

local function to_range_bound(v)
  local k = kind(v)
  if k == "number" then
    if number.is_float(v) then return number.to_integer(number.to_s(v)) end
    return v
  end
  if k == "nil" then return 0 end
  if k == "string" then return (number.to_number(v:match("^%s*[+-]?%d+") or "0")) end
  errors.argument("invalid integer")
end

-- ---------------------------------------------------------------------------------------
-- Compiler state

local Compiler = {}
Compiler.__index = Compiler

function Compiler:at(pos)
  local line, col = self.locate(pos or 1)
  return { line, col }
end

function Compiler:fail(kind_, message, pos)
  local line, col = self.locate(pos or 1)
  errors.raise(kind_, message, line, col)
end

-- Collect names written by assign/capture and counters, so other names read the data
-- directly.
local function collect_writes(nodes, assigned, counters)
  for i = 1, #nodes do
    local node = nodes[i]
    local t = node.t
    if t == "assign" or t == "capture" then assigned[node.name] = true end
    if t == "counter" then counters[node.name] = true end
    if node.body then collect_writes(node.body, assigned, counters) end
    if node.else_body then collect_writes(node.else_body, assigned, counters) end
    if node.branches then
      for j = 1, #node.branches do collect_writes(node.branches[j].body, assigned, counters) end
    end
    if node.blocks then
      for j = 1, #node.blocks do collect_writes(node.blocks[j].body, assigned, counters) end
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- Expressions

local compile_expr

local function const(v)
  return function() return v end
end

-- The dynamic root lookup for `name`: locals (assign/capture), counters, then data.
function Compiler:root_getter(name)
  local in_locals, in_counters = self.assigned[name], self.counters[name]
  if in_locals and in_counters then
    return function(ctx)
      local v = ctx.locals[name]
      if v ~= nil then return v end
      v = ctx.counters[name]
      if v ~= nil then return v end
      return ctx.data[name]
    end
  elseif in_locals then
    return function(ctx)
      local v = ctx.locals[name]
      if v ~= nil then return v end
      return ctx.data[name]
    end
  elseif in_counters then
    return function(ctx)
      local v = ctx.counters[name]
      if v ~= nil then return v end
      return ctx.data[name]
    end
  end
  return function(ctx) return ctx.data[name] end
end

local function dynamic_root(ctx, name)
  if type(name) ~= "string" then
    if number.is_number(name) then name = number.to_s(name) else return nil end
  end
  local v = ctx.locals[name]
  if v ~= nil then return v end
  v = ctx.counters[name]
  if v ~= nil then return v end
  return ctx.data[name]
end

function Compiler:var(node, scope, guarded)
  local ref = { text = node.text }
  ref.line, ref.col = self.locate(node.pos or 1)
  local root
  local name = node.root
  if name ~= nil then
    local s = scope
    while s do
      if s.var == name then break end
      s = s.parent
    end
    if s then
      local slot = s.slot
      root = function(ctx) return ctx.lv[slot] end
    elseif name == "forloop" and scope then
      local slot = scope.slot
      local l = scope
      while l do
        l.node.uses_forloop = true
        l = l.parent
      end
      root = function(ctx) return ctx.fl[slot] end
    else
      root = self:root_getter(name)
    end
  else
    local e = compile_expr(self, node.rootexpr, scope, guarded)
    root = function(ctx) return dynamic_root(ctx, e(ctx)) end
  end

  local keys = node.keys
  local nkeys = #keys
  local statics, dots, dyn = {}, {}, {}
  local all_static = true
  for i = 1, nkeys do
    local key = keys[i]
    dots[i] = key.dot or false
    if key.e then
      dyn[i] = compile_expr(self, key.e, scope, guarded)
      all_static = false
    else
      statics[i] = key.v
    end
  end

  local on_missing
  if guarded then
    on_missing = function() return nil end
  else
    on_missing = function(ctx) return missing(ctx, ref) end
  end

  if nkeys == 0 then
    return function(ctx)
      local v = root(ctx)
      if v == nil then return on_missing(ctx) end
      return v
    end
  end
  if all_static and nkeys == 1 then
    local k1, d1 = statics[1], dots[1]
    return function(ctx)
      local v = root(ctx)
      if v == nil then return on_missing(ctx) end
      local nv
      if type(v) == "table" and type(k1) == "string" then nv = v[k1] end
      if nv == nil then
        local found
        nv, found = index(v, k1, d1)
        if not found then return on_missing(ctx) end
      end
      return nv
    end
  end
  if all_static and nkeys == 2 then
    local k1, d1, k2, d2 = statics[1], dots[1], statics[2], dots[2]
    return function(ctx)
      local v = root(ctx)
      if v == nil then return on_missing(ctx) end
      local nv
      if type(v) == "table" and type(k1) == "string" then nv = v[k1] end
      if nv == nil then
        local found
        nv, found = index(v, k1, d1)
        if not found then return on_missing(ctx) end
      end
      v = nv
      nv = nil
      if type(v) == "table" and type(k2) == "string" then nv = v[k2] end
      if nv == nil then
        local found
        nv, found = index(v, k2, d2)
        if not found then return on_missing(ctx) end
      end
      return nv
    end
  end
  return function(ctx)
    local v = root(ctx)
    if v == nil then return on_missing(ctx) end
    for i = 1, nkeys do
      local key = statics[i]
      if key == nil then
        key = dyn[i](ctx)
        if type(key) == "table" and getmetatable(key) == FLOAT then key = key[1] end
      end
      local nv
      if type(v) == "table" and type(key) == "string" then nv = v[key] end
      if nv == nil then
        local found
        nv, found = index(v, key, dots[i])
        if not found then return on_missing(ctx) end
      end
      v = nv
    end
    return v
  end
end

local function special_equals(special, v)
  if special == "blank" then return is_blank(v) end
  return is_empty(v)
end

function Compiler:cmp(node, scope, guarded)
  local op, l, r = node.op, node.l, node.r
  local lt, rt = l.t, r.t
  local lspecial = (lt == "blank" or lt == "empty") and lt
  local rspecial = (rt == "blank" or rt == "empty") and rt
  local lf = not lspecial and compile_expr(self, l, scope, guarded)
  local rf = not rspecial and compile_expr(self, r, scope, guarded)
  if op == "==" or op == "!=" or op == "<>" then
    local negate = op ~= "=="
    if lspecial and rspecial then
      local same = lspecial == rspecial
      if negate then same = not same end
      return const(same)
    end
    if lspecial or rspecial then
      local special, f = lspecial or rspecial, lf or rf
      if negate then
        return function(ctx) return not special_equals(special, f(ctx)) end
      end
      return function(ctx) return special_equals(special, f(ctx)) end
    end
    if negate then
      return function(ctx) return not equals(lf(ctx), rf(ctx)) end
    end
    return function(ctx) return equals(lf(ctx), rf(ctx)) end
  end
  if op == "contains" then
    lf = lf or const("")
    rf = rf or const("")
    return function(ctx) return contains(lf(ctx), rf(ctx)) end
  end
  if lspecial or rspecial then
    if lf then return function(ctx) lf(ctx) return false end end
    if rf then return function(ctx) rf(ctx) return false end end
    return const(false)
  end
  if op == "<" then
    return function(ctx) local c = compare(lf(ctx), rf(ctx)) return c ~= nil and c < 0 end
  elseif op == ">" then
    return function(ctx) local c = compare(lf(ctx), rf(ctx)) return c ~= nil and c > 0 end
  elseif op == "<=" then
    return function(ctx) local c = compare(lf(ctx), rf(ctx)) return c ~= nil and c <= 0 end
  end
  return function(ctx) local c = compare(lf(ctx), rf(ctx)) return c ~= nil and c >= 0 end
end

-- Filters: `spec = { fn, min, max, kwargs, ctx }` from the registry.
function Compiler:filter_chain(node, scope, guarded)
  local base = node.base and compile_expr(self, node.base, scope, guarded) or const(nil)
  local filters = node.filters
  if #filters == 0 then return base end
  local steps = {}
  for i = 1, #filters do
    local f = filters[i]
    local line, col = self.locate(f.pos)
    f.line, f.col = line, col
    local spec = self.filters[f.name]
    local nargs = #f.args
    if not spec then
      self.unknown_filters[#self.unknown_filters + 1] = { filter = f.name, line = line, column = col }
      if self.strict then
        self:fail("undefined_filter", "undefined filter '" .. f.name .. "'", f.pos)
      end
      for j = 1, nargs do compile_expr(self, f.args[j], scope, guarded) end
      steps[i] = function(ctx, v) unknown_filter(ctx, f) return v end
    else
      local lo, hi = spec.min or 0, spec.max or 0
      if nargs < lo or nargs > hi then
        local expected = lo == hi and tostring(lo) or (hi == math.huge and (lo .. " or more") or (lo .. " to " .. hi))
        self:fail("syntax", "wrong number of arguments for filter '" .. f.name .. "' (given " .. nargs
          .. ", expected " .. expected .. ")", f.pos)
      end
      local kw
      if f.kwargs then
        if not spec.kwargs then
          self:fail("syntax", "filter '" .. f.name .. "' does not take keyword arguments", f.pos)
        end
        kw = {}
        for j = 1, #f.kwargs do
          local k = f.kwargs[j]
          kw[#kw + 1] = { name = k.name, fn = compile_expr(self, k.e, scope, guarded) }
        end
      end
      -- an argument that evaluates to nil is passed as null, so filters can tell it from an
      -- omitted argument (`join: nosuchthing` joins with "", `join` with " ")
      local args = {}
      for j = 1, nargs do
        local a = f.args[j]
        if a.t == "lit" and getmetatable(a.v) ~= RANGE then
          args[j] = const(a.v == nil and NULL or a.v)
        else
          local af = compile_expr(self, a, scope, guarded)
          args[j] = function(ctx)
            local v = af(ctx)
            if v == nil then return NULL end
            return v
          end
        end
      end
      local fn = spec.fn
      local with_ctx = spec.ctx
      local fat = { line, col }
      local a1, a2, a3 = args[1], args[2], args[3]
      -- the filter's result is charged to the memory budget (a range a filter expands is
      -- charged by `values.elements`)
      local step
      if spec.kwargs then
        local slots = hi
        step = function(ctx, v)
          local list = {}
          for j = 1, nargs do list[j] = args[j](ctx) end
          ctx.at = fat
          local kwv = {}
          if kw then
            for j = 1, #kw do kwv[kw[j].name] = kw[j].fn(ctx) end
          end
          list[slots + 1] = kwv
          local r
          if with_ctx then r = fn(ctx, v, unpack(list, 1, slots + 1)) else r = fn(v, unpack(list, 1, slots + 1)) end
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif with_ctx and nargs == 0 then
        step = function(ctx, v)
          ctx.at = fat
          local r = fn(ctx, v)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif with_ctx and nargs == 1 then
        step = function(ctx, v)
          local x1 = a1(ctx)
          ctx.at = fat
          local r = fn(ctx, v, x1)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif with_ctx and nargs == 2 then
        step = function(ctx, v)
          local x1, x2 = a1(ctx), a2(ctx)
          ctx.at = fat
          local r = fn(ctx, v, x1, x2)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif with_ctx then
        step = function(ctx, v)
          local list = {}
          for j = 1, nargs do list[j] = args[j](ctx) end
          ctx.at = fat
          local r = fn(ctx, v, unpack(list, 1, nargs))
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif nargs == 0 then
        step = function(ctx, v)
          ctx.at = fat
          local r = fn(v)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif nargs == 1 then
        step = function(ctx, v)
          local x1 = a1(ctx)
          ctx.at = fat
          local r = fn(v, x1)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif nargs == 2 then
        step = function(ctx, v)
          local x1, x2 = a1(ctx), a2(ctx)
          ctx.at = fat
          local r = fn(v, x1, x2)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      elseif nargs == 3 then
        step = function(ctx, v)
          local x1, x2, x3 = a1(ctx), a2(ctx), a3(ctx)
          ctx.at = fat
          local r = fn(v, x1, x2, x3)
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      else
        step = function(ctx, v)
          local list = {}
          for j = 1, nargs do list[j] = args[j](ctx) end
          ctx.at = fat
          local r = fn(v, unpack(list, 1, nargs))
          if type(r) == "string" then
            if r ~= v then
              local m = ctx.mem + #r
              ctx.mem = m
              if m > ctx.max_memory then charge(ctx, 0) end   -- raises the limit error
            end
          elseif r ~= nil then
            charge_result(ctx, r, v)
          end
          return r
        end
      end
      steps[i] = step
    end
  end
  local nsteps = #steps
  if nsteps == 1 then
    local s1 = steps[1]
    return function(ctx) return s1(ctx, base(ctx)) end
  elseif nsteps == 2 then
    local s1, s2 = steps[1], steps[2]
    return function(ctx) return s2(ctx, s1(ctx, base(ctx))) end
  end
  return function(ctx)
    local v = base(ctx)
    for i = 1, nsteps do v = steps[i](ctx, v) end
    return v
  end
end

compile_expr = function(self, node, scope, guarded)
  local t = node.t
  if t == "lit" then
    local v = node.v
    if getmetatable(v) == RANGE then
      -- made per render, so the range carries the render's budget (see values.range)
      local first, last = v[1], v[2]
      return function(ctx) return range(first, last, ctx) end
    end
    return const(v)
  elseif t == "var" then
    return self:var(node, scope, guarded)
  elseif t == "filtered" then
    local g = guarded
    if not g then
      for i = 1, #node.filters do
        if node.filters[i].name == "default" then g = true break end
      end
    end
    return self:filter_chain(node, scope, g)
  elseif t == "range" then
    local a, b = compile_expr(self, node.a, scope, guarded), compile_expr(self, node.b, scope, guarded)
    return function(ctx)
      return range(to_range_bound(a(ctx)), to_range_bound(b(ctx)), ctx)
    end
  elseif t == "cmp" then
    return self:cmp(node, scope, guarded)
  elseif t == "and" then
    local l, r = compile_expr(self, node.l, scope, guarded), compile_expr(self, node.r, scope, guarded)
    return function(ctx) return truthy(l(ctx)) and truthy(r(ctx)) end
  elseif t == "or" then
    local l, r = compile_expr(self, node.l, scope, guarded), compile_expr(self, node.r, scope, guarded)
    return function(ctx) return truthy(l(ctx)) or truthy(r(ctx)) end
  elseif t == "blank" or t == "empty" then
    return const(true)
  end
  error("unknown expression node " .. tostring(t))
end
M.compile_expr = compile_expr

-- ---------------------------------------------------------------------------------------
-- Statements

local compile_body
local statements = {}
M.statements = statements

statements["text"] = function(_, node)
  return node.v
end

statements["comment"] = function()
  return nil
end

statements["output"] = function(self, node, scope)
  local e = compile_expr(self, node.expr, scope, false)
  local at = self:at(node.pos)
  return function(ctx)
    ctx.at = at
    local v = e(ctx)
    if type(v) ~= "string" then v = output_of(v) end
    local n = ctx.n + 1
    ctx.n = n
    ctx.out[n] = v
    local size = ctx.size + #v
    ctx.size = size
    if size > ctx.max_output then output_exceeded(ctx) end
  end
end

statements["assign"] = function(self, node, scope)
  local e = compile_expr(self, node.value, scope, false)
  local name = node.name
  local at = self:at(node.pos)
  return function(ctx)
    ctx.at = at
    local v = e(ctx)
    if v == nil then v = NULL end
    ctx.locals[name] = v
  end
end

statements["capture"] = function(self, node, scope)
  local body = compile_body(self, node.body, scope)
  local name = node.name
  local at = self:at(node.pos)
  return function(ctx)
    local out, n = ctx.out, ctx.n
    ctx.out, ctx.n = {}, 0
    local sig = body(ctx)
    local s = concat(ctx.out, "", 1, ctx.n)
    ctx.out, ctx.n = out, n
    ctx.at = at
    charge(ctx, #s)
    ctx.locals[name] = s
    return sig
  end
end

statements["group"] = function(self, node, scope)
  return compile_body(self, node.body, scope)
end

local function conditional(negate_first)
  return function(self, node, scope)
    local branches = node.branches
    local nb = #branches
    local conds, bodies, ats = {}, {}, {}
    for i = 1, nb do
      local b = branches[i]
      conds[i] = b.cond and compile_expr(self, b.cond, scope, true) or false
      bodies[i] = compile_body(self, b.body, scope)
      ats[i] = self:at(b.pos)
    end
    if nb == 1 and conds[1] then
      local c, body, at = conds[1], bodies[1], ats[1]
      if negate_first then
        return function(ctx)
          ctx.at = at
          if not truthy(c(ctx)) then return body(ctx) end
        end
      end
      return function(ctx)
        ctx.at = at
        if truthy(c(ctx)) then return body(ctx) end
      end
    end
    return function(ctx)
      for i = 1, nb do
        local c = conds[i]
        if not c then return bodies[i](ctx) end
        ctx.at = ats[i]
        local r = truthy(c(ctx))
        if i == 1 and negate_first then r = not r end
        if r then return bodies[i](ctx) end
      end
    end
  end
end
statements["if"] = conditional(false)
statements["unless"] = conditional(true)

statements["case"] = function(self, node, scope)
  local subject = compile_expr(self, node.subject, scope, false)
  local at = self:at(node.pos)
  local blocks = {}
  for i = 1, #node.blocks do
    local b = node.blocks[i]
    local cb = { body = compile_body(self, b.body, scope), is_else = b.is_else, tests = {} }
    if not b.is_else then
      for j = 1, #b.values do
        local v = b.values[j]
        if v.t == "blank" or v.t == "empty" then
          local special = v.t
          cb.tests[j] = function(_, subj) return special_equals(special, subj) end
        else
          local f = compile_expr(self, v, scope, false)
          cb.tests[j] = function(ctx, subj) return equals(subj, f(ctx)) end
        end
      end
    end
    blocks[i] = cb
  end
  local nblocks = #blocks
  return function(ctx)
    ctx.at = at
    local subj = subject(ctx)
    local matched = false
    for i = 1, nblocks do
      local b = blocks[i]
      if b.is_else then
        if not matched then
          local sig = b.body(ctx)
          if sig then return sig end
        end
      else
        local tests = b.tests
        for j = 1, #tests do
          if tests[j](ctx, subj) then
            matched = true
            local sig = b.body(ctx)
            if sig then return sig end
          end
        end
      end
    end
  end
end

statements["break"] = function()
  return function() return "break" end
end

statements["continue"] = function()
  return function() return "continue" end
end

statements["counter"] = function(self, node)
  local name, delta = node.name, node.delta
  local at = self:at(node.pos)
  return function(ctx)
    ctx.at = at
    local counters = ctx.counters
    local v = counters[name] or 0
    if delta < 0 then
      v = v - 1
      counters[name] = v
    else
      counters[name] = v + 1
    end
    append(ctx, number.to_s(v))
  end
end

local NIL_KEY = {}

statements["cycle"] = function(self, node, scope)
  local group = node.group and compile_expr(self, node.group, scope, true)
  local static_key = node.key and ("u:" .. node.key)
  local vals = {}
  for i = 1, #node.values do vals[i] = compile_expr(self, node.values[i], scope, false) end
  local count = #vals
  local at = self:at(node.pos)
  return function(ctx)
    ctx.at = at
    local key = static_key
    if group then
      local g = group(ctx)
      if g == nil or g == NULL then key = NIL_KEY
      elseif type(g) == "string" then key = "s:" .. g
      else key = "v:" .. values.inspect(g) end
    end
    local cycles = ctx.cycles
    local i = cycles[key] or 0
    local f = vals[i + 1]
    local v = f and f(ctx)
    local s
    if kind(v) == "array" then
      local parts = {}
      for j = 1, #v do parts[j] = values.to_s(v[j]) end
      s = concat(parts)
    else
      s = values.to_s(v)
    end
    append(ctx, s)
    i = i + 1
    if i >= count then i = 0 end
    cycles[key] = i
  end
end

-- The items of a for loop: returns count and a getter item(i) for i in 1..count, after
-- applying offset/limit (Ruby's slice_collection).
local function loop_segment(ctx, coll, from, limit)
  local k = kind(coll)
  local len, getter
  if k == "array" then
    len = #coll
    getter = function(i) return coll[i] end
  elseif k == "range" then
    local first = coll[1]
    len = coll[2] - first + 1
    if len < 0 then len = 0 end
    getter = function(i) return number.int(first + i - 1) end
  elseif k == "hash" then
    local list = values.hash_pairs(coll)
    len = #list
    charge(ctx, ITEM * len)
    getter = function(i) return list[i] end
  elseif k == "string" then
    if coll == "" then return 0 end
    len = 1
    getter = function() return coll end
  else
    return 0
  end
  local start = max(from, 0)
  local stop = len
  if limit then stop = min(len, from + limit) end
  local count = stop - start
  if count <= 0 then return 0 end
  return count, function(i) return getter(start + i) end
end

statements["for"] = function(self, node, scope)
  local inner = { var = node.var, slot = node.slot, node = node, parent = scope }
  local coll_fn = compile_expr(self, node.coll, scope, false)
  local limit_fn = node.limit and compile_expr(self, node.limit, scope, false)
  local offset_fn = node.offset and compile_expr(self, node.offset, scope, false)
  local body = compile_body(self, node.body, inner)
  local else_body = node.else_body and compile_body(self, node.else_body, scope)
  local slot, name, reversed, continue = node.slot, node.name, node.reversed, node.continue
  local parent_slot = scope and scope.slot
  local at = self:at(node.pos)
  local uses_forloop = node.uses_forloop
  return function(ctx)
    ctx.at = at
    local coll = coll_fn(ctx)
    local from = 0
    if continue then
      from = ctx.offsets[name] or 0
    elseif offset_fn then
      local o = offset_fn(ctx)
      if o ~= nil and o ~= NULL then from = number.to_integer(o) end
    end
    local limit
    if limit_fn then
      local l = limit_fn(ctx)
      if l ~= nil and l ~= NULL then limit = number.to_integer(l) end
    end
    local count, item = loop_segment(ctx, coll, from, limit)
    ctx.offsets[name] = from + count
    if count == 0 then
      if else_body then return else_body(ctx) end
      return
    end
    local steps = ctx.steps + count
    ctx.steps = steps
    if steps > ctx.max_steps then
      limit_error(ctx, "loop limit exceeded: more than " .. ctx.max_steps .. " iterations (raise with max_iterations)")
    end
    local lv = ctx.lv
    local fl
    if uses_forloop then
      fl = { name = name, length = count, parentloop = parent_slot and ctx.fl[parent_slot] or nil }
      ctx.fl[slot] = fl
    end
    for i = 1, count do
      local idx = reversed and (count - i + 1) or i
      lv[slot] = item(idx)
      if fl then
        fl.index, fl.index0, fl.rindex, fl.rindex0 = i, i - 1, count - i + 1, count - i
        fl.first, fl.last = i == 1, i == count
      end
      local sig = body(ctx)
      if sig == "break" then break end
    end
    lv[slot] = nil
    if fl then ctx.fl[slot] = nil end
  end
end

compile_body = function(self, nodes, scope)
  local items, n = {}, 0
  local function add(item)
    if item == nil then return end
    if type(item) == "string" and n > 0 and type(items[n]) == "string" then
      items[n] = items[n] .. item
    else
      n = n + 1
      items[n] = item
    end
  end
  for i = 1, #nodes do
    local node = nodes[i]
    local compile = statements[node.t]
    if not compile then error("no compiler for node type " .. tostring(node.t)) end
    add(compile(self, node, scope))
  end
  if n == 0 then return function() end end
  if n == 1 then
    local item = items[1]
    if type(item) == "string" then
      return function(ctx) append(ctx, item) end
    end
    return item
  end
  return function(ctx)
    local out = ctx.out
    for i = 1, n do
      local item = items[i]
      if type(item) == "string" then
        local k = ctx.n + 1
        ctx.n = k
        out[k] = item
        local size = ctx.size + #item
        ctx.size = size
        if size > ctx.max_output then output_exceeded(ctx) end
      else
        local sig = item(ctx)
        if sig then return sig end
        out = ctx.out
      end
    end
  end
end
M.compile_body = compile_body

--- Compile a document node.
-- @tparam table doc the result of `parser.parse`
-- @tparam table filters the filter registry (name → spec)
-- @tparam[opt] table opts `strict` (unknown filters are errors)
-- @treturn function render(ctx)
-- @treturn table compile information: `unknown_filters` (`{filter, line, column}` list)
function M.compile(doc, filters, opts)
  opts = opts or {}
  local assigned, counters = {}, {}
  collect_writes(doc.body, assigned, counters)
  local self = setmetatable({
    locate = doc.locate,
    filters = filters,
    strict = opts.strict,
    assigned = assigned,
    counters = counters,
    unknown_filters = {},
  }, Compiler)
  local body = compile_body(self, doc.body, nil)
  return body, { unknown_filters = self.unknown_filters }
end

--- Compile a standalone condition (for `where_exp`-style filters) in which `var` names the
-- item being tested. Returns `fn(ctx) -> value` and the slot key to set in `ctx.lv`.
-- Undefined variables in it are not reported.
-- @tparam table node an expression node
-- @tparam string var the item variable name
-- @tparam table filters the filter registry
-- @treturn function
-- @treturn table slot key
function M.compile_condition(node, var, filters)
  local everything = setmetatable({}, { __index = function() return true end })
  local self = setmetatable({
    locate = function() return nil, nil end,
    filters = filters,
    assigned = everything,
    counters = everything,
    unknown_filters = {},
  }, Compiler)
  local slot = {}
  local scope = { var = var, slot = slot, node = {}, parent = nil }
  return compile_expr(self, node, scope, true), slot
end

return M
