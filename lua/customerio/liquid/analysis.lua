--- Static analysis: which context variables does a template read?
--
-- Walks the parsed template in document order. A name is local from its first `assign`,
-- `capture`, `increment` or `decrement` onwards; loop variables and `forloop` are local
-- inside their loop. Every other variable reference is reported with its static path
-- (`trigger.reset_url`, `order.items[0].name`), cut at the first computed index
-- (`menu[key]` gives `menu`, and `key` on its own) and without a trailing `size`, `first`
-- or `last`. References inside `if`/`elsif`/`unless` conditions or filtered by `default`
-- are marked `guarded`.
-- @module customerio.liquid.analysis

local values = require("customerio.liquid.values")
local number = require("customerio.liquid.number")

local type, ipairs = type, ipairs
local find = string.find

local M = {}

local COMMANDS = { size = true, first = true, last = true }

local function key_text(v)
  if type(v) == "string" then
    if find(v, "^[%a_][%w_%-]*%??$") then return "." .. v end
    return "[" .. values.inspect(v) .. "]"
  end
  if number.is_number(v) then return "[" .. number.to_s(v) .. "]" end
  return "[" .. values.inspect(v) .. "]"
end

local walk_expr, walk_body

-- Static path text of a variable node (nil when its root is computed).
local function path_of(node)
  if node.t ~= "var" or node.root == nil then return nil end
  local root = node.root
  local path = root
  if not find(root, "^[%a_][%w_%-]*%??$") then path = "[" .. values.inspect(root) .. "]" end
  for _, key in ipairs(node.keys) do
    if key.e then break end
    path = path .. key_text(key.v)
  end
  return path
end

local function is_nothing(node)
  return node.t == "blank" or node.t == "empty" or (node.t == "lit" and (node.v == nil or node.v == ""))
end

-- Paths that must be present when condition `c` is true (`x`, `x != blank`, `x == 'a'`,
-- `x > 0`, `x contains 'a'`, and both sides of `and`).
local function present_if_true(c, out)
  out = out or {}
  if not c then return out end
  if c.t == "var" then
    out[#out + 1] = path_of(c)
  elseif c.t == "and" then
    present_if_true(c.l, out)
    present_if_true(c.r, out)
  elseif c.t == "cmp" then
    local op = c.op
    local l, r = c.l, c.r
    if op == "!=" or op == "<>" then
      if is_nothing(r) and l.t == "var" then out[#out + 1] = path_of(l) end
      if is_nothing(l) and r.t == "var" then out[#out + 1] = path_of(r) end
    elseif op == "contains" then
      if l.t == "var" then out[#out + 1] = path_of(l) end
    else
      if not is_nothing(r) and l.t == "var" then out[#out + 1] = path_of(l) end
      if not is_nothing(l) and r.t == "var" then out[#out + 1] = path_of(r) end
    end
  end
  return out
end

-- Paths that must be present when condition `c` is false (`x == blank`, `x == nil`).
local function present_if_false(c, out)
  out = out or {}
  if c and c.t == "cmp" and c.op == "==" then
    if is_nothing(c.r) and c.l.t == "var" then out[#out + 1] = path_of(c.l) end
    if is_nothing(c.l) and c.r.t == "var" then out[#out + 1] = path_of(c.r) end
  end
  return out
end

-- Is `path` known to be present: equal to, or a prefix of, a path tested by an enclosing
-- condition?
local function tested(state, path)
  for i = #state.tested, 1, -1 do
    local set = state.tested[i]
    for _, t in ipairs(set) do
      if t == path then return true end
      local n = #path
      if #t > n and t:sub(1, n) == path then
        local c = t:sub(n + 1, n + 1)
        if c == "." or c == "[" then return true end
      end
    end
  end
  return false
end

local function with_tested(state, paths, fn)
  state.tested[#state.tested + 1] = paths
  fn()
  state.tested[#state.tested] = nil
end

local function record(state, node, guarded)
  local root = node.root
  local segments = {}
  local path = root
  if not find(root, "^[%a_][%w_%-]*%??$") then path = "[" .. values.inspect(root) .. "]" end
  local keys = node.keys
  for i = 1, #keys do
    local key = keys[i]
    if key.e then break end
    segments[#segments + 1] = { v = key.v, dot = key.dot or false }
  end
  while #segments > 0 do
    local last = segments[#segments]
    if last.dot and COMMANDS[last.v] then segments[#segments] = nil else break end
  end
  for i = 1, #segments do path = path .. key_text(segments[i].v) end
  if not guarded and tested(state, path) then guarded = true end
  local line, col = state.locate(node.pos or 1)
  state.refs[#state.refs + 1] = {
    path = path, root = root, segments = segments, line = line, column = col, guarded = guarded or false,
  }
end

walk_expr = function(state, e, guarded)
  if not e then return end
  local t = e.t
  if t == "var" then
    local root = e.root
    if root ~= nil then
      local is_local = state.locals[root]
      if not is_local then
        for i = #state.loops, 1, -1 do
          if state.loops[i] == root then is_local = true break end
        end
      end
      if not is_local and root == "forloop" and #state.loops > 0 then is_local = true end
      if not is_local then record(state, e, guarded) end
    else
      walk_expr(state, e.rootexpr, guarded)
    end
    for _, key in ipairs(e.keys) do
      if key.e then walk_expr(state, key.e, guarded) end
    end
  elseif t == "filtered" then
    local g = guarded
    for _, f in ipairs(e.filters) do
      if f.name == "default" then g = true end
    end
    walk_expr(state, e.base, g)
    for _, f in ipairs(e.filters) do
      for _, a in ipairs(f.args) do walk_expr(state, a, g) end
      if f.kwargs then
        for _, k in ipairs(f.kwargs) do walk_expr(state, k.e, g) end
      end
    end
  elseif t == "range" then
    walk_expr(state, e.a, guarded)
    walk_expr(state, e.b, guarded)
  elseif t == "cmp" or t == "and" or t == "or" then
    walk_expr(state, e.l, guarded)
    walk_expr(state, e.r, guarded)
  end
end
M.walk_expr = walk_expr

local walkers = {}
M.walkers = walkers

walkers["output"] = function(state, node) walk_expr(state, node.expr, false) end
walkers["assign"] = function(state, node)
  walk_expr(state, node.value, false)
  state.locals[node.name] = true
end
walkers["capture"] = function(state, node)
  walk_body(state, node.body)
  state.locals[node.name] = true
end
walkers["counter"] = function(state, node) state.locals[node.name] = true end
walkers["group"] = function(state, node) walk_body(state, node.body) end
local function conditional(negate_first)
  return function(state, node)
    for i, b in ipairs(node.branches) do
      walk_expr(state, b.cond, true)
      local paths
      if i == 1 and negate_first then paths = present_if_false(b.cond) else paths = present_if_true(b.cond) end
      with_tested(state, paths, function() walk_body(state, b.body) end)
    end
  end
end
walkers["if"] = conditional(false)
walkers["unless"] = conditional(true)
walkers["case"] = function(state, node)
  walk_expr(state, node.subject, false)
  local subject = path_of(node.subject)
  for _, b in ipairs(node.blocks) do
    local paths = {}
    if b.values then
      for _, v in ipairs(b.values) do
        walk_expr(state, v, false)
        if subject and not is_nothing(v) then paths[1] = subject end
      end
    end
    with_tested(state, paths, function() walk_body(state, b.body) end)
  end
end
walkers["for"] = function(state, node)
  walk_expr(state, node.coll, false)
  walk_expr(state, node.limit, false)
  walk_expr(state, node.offset, false)
  state.loops[#state.loops + 1] = node.var
  walk_body(state, node.body)
  state.loops[#state.loops] = nil
  if node.else_body then walk_body(state, node.else_body) end
end
walkers["cycle"] = function(state, node)
  for _, v in ipairs(node.values) do walk_expr(state, v, false) end
end

walk_body = function(state, nodes)
  for i = 1, #nodes do
    local node = nodes[i]
    local w = walkers[node.t]
    if w then
      w(state, node)
    elseif node.exprs then
      for _, e in ipairs(node.exprs) do walk_expr(state, e, node.guarded) end
    end
  end
end

--- Analyse a parsed document.
-- @tparam table doc from `parser.parse`
-- @treturn table unique paths in order of first use
-- @treturn table every reference: `{ path, root, segments, line, column, guarded }`
function M.variables(doc)
  local state = { locals = {}, loops = {}, refs = {}, tested = {}, locate = doc.locate }
  walk_body(state, doc.body)
  local paths, seen = {}, {}
  for _, ref in ipairs(state.refs) do
    if not seen[ref.path] then
      seen[ref.path] = true
      paths[#paths + 1] = ref.path
    end
  end
  return paths, state.refs
end

return M
