--- Parsing of Liquid expressions (the markup inside `{{ }}` and tags) into small tables.
--
-- Expression nodes (`t` is the node type):
--
--     { t = "lit", v = value }
--     { t = "var", root = "name" | nil, rootexpr = node | nil, keys = {key...}, text = "a.b[0]", pos }
--         key = { v = "name", dot = true } | { v = literal } | { e = node }
--     { t = "range", a = node, b = node }
--     { t = "blank" } | { t = "empty" }          -- only as operands of comparisons
--     { t = "cmp", op = "==", l = node, r = node }
--     { t = "and" | "or", l = node, r = node }
--     { t = "filtered", base = node | nil, filters = { {name, args, kwargs, pos}... } }
--
-- `pos` fields are absolute byte offsets in the template source.
-- @module customerio.liquid.expression

local lexer = require("customerio.liquid.lexer")
local number = require("customerio.liquid.number")
local values = require("customerio.liquid.values")

local setmetatable, tostring, type, tonumber = setmetatable, tostring, type, tonumber
local floor = math.floor
local concat = table.concat

local M = {}

local Parser = {}
Parser.__index = Parser

--- Start parsing `markup`, which begins at byte `base` of the source. `fail(message, pos)`
-- must raise. The template parser passes a callable table whose `budget` method is told
-- how many tokens each markup uses (see `max_tokens`); the budget returns how many may
-- still be read, so one huge expression stops being scanned as soon as it is too long.
-- @tparam string markup
-- @tparam number base absolute byte offset of `markup`'s first byte
-- @tparam function|table fail
-- @treturn table parser
function M.new(markup, base, fail)
  local budget = type(fail) == "table" and fail.budget
  local toks, msg, at = lexer.scan(markup, budget and budget(fail))
  if not toks then
    if msg == lexer.TOO_MANY then fail.over(fail, base + at - 1) end
    fail(msg, base + at - 1)
  end
  if budget then budget(fail, #toks - 1) end
  return setmetatable({ toks = toks, i = 1, base = base, fail = fail, markup = markup }, Parser)
end

function Parser:peek(k)
  return self.toks[self.i + (k or 0)]
end

function Parser:pos_of(tok)
  return self.base + tok.pos - 1
end

function Parser:error(message, tok)
  tok = tok or self.toks[self.i]
  self.fail(message, self:pos_of(tok))
end

function Parser:advance()
  local tok = self.toks[self.i]
  self.i = self.i + 1
  return tok
end

function Parser:accept(type_, value)
  local tok = self.toks[self.i]
  if tok.type == type_ and (value == nil or tok.value == value) then
    self.i = self.i + 1
    return tok
  end
  return nil
end

function Parser:expect(type_, what)
  local tok = self.toks[self.i]
  if tok.type ~= type_ then
    local found = tok.type == "eos" and "the end of the expression" or ("'" .. tok.value .. "'")
    self:error("expected " .. (what or type_) .. " but found " .. found, tok)
  end
  self.i = self.i + 1
  return tok
end

function Parser:at_end()
  return self.toks[self.i].type == "eos"
end

--- Require that all tokens were used.
function Parser:finish()
  local tok = self.toks[self.i]
  if tok.type ~= "eos" then
    self:error("unexpected '" .. tok.value .. "'", tok)
  end
end

local KEYWORDS = { ["true"] = true, ["false"] = false, ["nil"] = values.null, ["null"] = values.null }

-- `.name` and `[expr]` lookups after a variable root. The text is collected in parts and
-- joined once, so a long path costs linear time.
function Parser:lookups(text)
  local keys, n = {}, 0
  local parts, np = { text }, 1
  while true do
    local tok = self.toks[self.i]
    if tok.type == "." then
      self.i = self.i + 1
      local id = self:expect("id", "a property name")
      n = n + 1
      keys[n] = { v = id.value, dot = true }
      parts[np + 1], parts[np + 2] = ".", id.value
      np = np + 2
    elseif tok.type == "[" then
      self.i = self.i + 1
      local e = self:primary()
      self:expect("]", "']'")
      n = n + 1
      if e.t == "lit" then keys[n] = { v = e.v } else keys[n] = { e = e } end
      parts[np + 1], parts[np + 2], parts[np + 3] = "[", e.text, "]"
      np = np + 3
    else
      break
    end
  end
  if np > 1 then text = concat(parts, "", 1, np) end
  return keys, text
end

--- A primary expression: literal, variable path or range.
-- @tparam[opt] boolean operand true inside conditions, where bare `blank`/`empty` are
--   special values
-- @treturn table node
function Parser:primary(operand)
  local tok = self.toks[self.i]
  local tt = tok.type
  if tt == "id" then
    self.i = self.i + 1
    local name = tok.value
    local keys, text = self:lookups(name)
    if #keys == 0 then
      local kw = KEYWORDS[name]
      if kw ~= nil then
        if kw == values.null then return { t = "lit", v = nil, text = name } end
        return { t = "lit", v = kw, text = name }
      end
      if name == "blank" or name == "empty" then
        if operand then return { t = name, text = name } end
        return { t = "lit", v = "", text = name }
      end
    end
    return { t = "var", root = name, keys = keys, text = text, pos = self:pos_of(tok) }
  elseif tt == "string" then
    self.i = self.i + 1
    local q = tok.value
    return { t = "lit", v = q, text = "'" .. q .. "'" }
  elseif tt == "number" then
    self.i = self.i + 1
    return { t = "lit", v = number.parse_literal(tok.value), text = tok.value }
  elseif tt == "[" then
    self.i = self.i + 1
    local e = self:primary()
    self:expect("]", "']'")
    local keys, text = self:lookups("[" .. e.text .. "]")
    if e.t == "lit" and type(e.v) == "string" then
      return { t = "var", root = e.v, keys = keys, text = text, pos = self:pos_of(tok), bracket = true }
    end
    return { t = "var", rootexpr = e, keys = keys, text = text, pos = self:pos_of(tok) }
  elseif tt == "(" then
    self.i = self.i + 1
    local a = self:primary()
    self:expect("..", "'..'")
    local b = self:primary()
    self:expect(")", "')'")
    local text = "(" .. a.text .. ".." .. b.text .. ")"
    if a.t == "lit" and b.t == "lit" then
      local function to_i(v)
        if number.is_number(v) then
          local x = number.value(v)
          return x >= 0 and floor(x) or -floor(-x)
        end
        if type(v) == "string" then return tonumber(v:match("^%s*([+-]?%d+)")) or 0 end
        if v == nil then return 0 end
        return nil
      end
      local x, y = to_i(a.v), to_i(b.v)
      if x == nil or y == nil then
        self:error("Invalid expression type in range expression", tok)
      end
      return { t = "lit", v = values.range(number.int(x), number.int(y)), text = text }
    end
    return { t = "range", a = a, b = b, text = text }
  end
  if tt == "eos" then self:error("expected an expression", tok) end
  self:error("'" .. tostring(tok.value) .. "' is not a valid expression", tok)
end

--- `expr | filter: args | ...` — the content of `{{ }}`, `echo` and `assign`.
-- An empty markup gives `{ t = "filtered" }` without a base (renders nothing).
-- @treturn table node
function Parser:filtered()
  local node = { t = "filtered", filters = {} }
  if self:at_end() then return node end
  node.base = self:primary()
  local filters, n = node.filters, 0
  while self:accept("|") do
    local name_tok = self:expect("id", "a filter name")
    local f = { name = name_tok.value, args = {}, kwargs = nil, pos = self:pos_of(name_tok) }
    if self:accept(":") then
      repeat
        local tok, nxt = self.toks[self.i], self.toks[self.i + 1]
        if tok.type == "id" and nxt.type == ":" then
          self.i = self.i + 2
          f.kwargs = f.kwargs or {}
          f.kwargs[#f.kwargs + 1] = { name = tok.value, e = self:primary() }
        else
          f.args[#f.args + 1] = self:primary()
        end
      until not self:accept(",")
    end
    n = n + 1
    filters[n] = f
  end
  self:finish()
  return node
end

function Parser:comparison()
  local a = self:primary(true)
  local tok = self.toks[self.i]
  if tok.type == "cmp" then
    self.i = self.i + 1
    local b = self:primary(true)
    return { t = "cmp", op = tok.value, l = a, r = b }
  end
  return a
end

--- A condition of `if`/`elsif`/`unless`: comparisons joined by `and`/`or`, grouped from the
-- right (`a and b or c` is `a and (b or c)`).
-- @treturn table node
function Parser:condition()
  local left = self:comparison()
  local tok = self.toks[self.i]
  if tok.type == "id" and (tok.value == "and" or tok.value == "or") then
    self.i = self.i + 1
    local right = self:condition()
    return { t = tok.value, l = left, r = right }
  end
  return left
end

--- The values of a `when`: expressions separated by `or` or `,`. Anything else after a value
-- ends the list (Shopify's lax parser ignores it).
-- @treturn table array of nodes
function Parser:when_values(strict2)
  local list = { self:primary(true) }
  while self:accept(",") or self:accept("id", "or") do
    list[#list + 1] = self:primary(true)
  end
  if strict2 then self:finish() end
  return list
end

--- Parse markup that must be one condition.
-- @tparam string markup
-- @tparam number base
-- @tparam function fail
-- @treturn table node
function M.condition(markup, base, fail)
  local p = M.new(markup, base, fail)
  local node = p:condition()
  p:finish()
  return node
end

--- Parse markup that must be a filtered expression.
-- @tparam string markup
-- @tparam number base
-- @tparam function fail
-- @treturn table node
function M.filtered(markup, base, fail)
  return M.new(markup, base, fail):filtered()
end

return M
