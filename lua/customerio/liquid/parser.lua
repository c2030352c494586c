--- Template parser: tokens to a tree of nodes.
--
-- Node types (`t`): `text` (`v`), `output` (`expr`), `assign`, `capture`, `if`, `unless`,
-- `case`, `for`, `break`, `continue`, `cycle`, `increment`, `decrement`, `raw`, `comment`,
-- `group` (the statements of a `{% liquid %}` tag) and the Customer.io tags. Every node has
-- `pos` (byte offset of its tag in the source) and `blank` (true when it renders nothing
-- but whitespace, which lets a block made only of such nodes drop its whitespace, as
-- Shopify Liquid does).
--
-- Tags are registered in `parser.tags[name] = function(p, stream, markup, mpos, pos)`; the
-- Customer.io module adds its own.
-- @module customerio.liquid.parser

local lexer = require("customerio.liquid.lexer")
local expression = require("customerio.liquid.expression")
local errors = require("customerio.liquid.errors")
local text = require("customerio.liquid.text")
local values = require("customerio.liquid.values")

local setmetatable, select = setmetatable, select
local find, sub, byte, match = string.find, string.sub, string.byte, string.match
local concat = table.concat

local M = {}

local MAX_DEPTH = 100
local DASH = 45

local Parser = {}
Parser.__index = Parser

--- Registered tags: name → parse function.
M.tags = {}
local tags = M.tags

--- Raise a syntax error at byte `pos` of the source.
-- @tparam string message
-- @tparam number pos
function Parser:fail(message, pos)
  local line, col = self.locate(pos or 1)
  errors.raise("syntax", message, line, col)
end

local function limit_message(max)
  return "template limit exceeded: more than " .. max .. " tokens (raise with max_tokens)"
end

-- What expressions are given to report errors and count their tokens against
-- `max_tokens` (see `expression.new`): one per parse, callable as `fail(message, pos)`.
local Failer = {
  __call = function(f, message, pos) f.parser:fail(message, pos) end,
}
Failer.__index = Failer
function Failer.budget(f, used)
  local p = f.parser
  if used then p.tokens_left = p.tokens_left - used end
  return p.tokens_left
end
function Failer.over(f, pos)
  local p = f.parser
  local line, col = p.locate(pos or 1)
  errors.raise("limit", limit_message(p.max_tokens), line, col)
end

function Parser:failer()
  return self.failer_obj
end

--- Next token of a stream (document tokens or `{% liquid %}` lines).
function Parser:next(stream)
  if stream.liquid then
    local i = stream.i + 1
    stream.i = i
    return stream.lines[i]
  end
  local i = self.ti + 1
  self.ti = i
  local tok = self.tokens[i]
  if tok then
    local left = self.tokens_left - 1
    self.tokens_left = left
    if left < 0 then self.failer_obj:over(tok.pos) end
  end
  return tok
end

-- Split a `{% name markup %}` token: name, markup, absolute offset of markup.
local function split_tag(tok)
  local s = tok.s
  if tok.unterminated or sub(s, -2) ~= "%}" or #s < 4 then return nil end
  local p = 3
  if byte(s, 3) == DASH then p = 4 end
  local _, e = find(s, "^%s*", p)
  p = e + 1
  local name
  if byte(s, p) == 35 then -- "#"
    name = "#"
    p = p + 1
  else
    local ws, we = find(s, "^[%w_]+", p)
    if not ws then return nil end
    name = sub(s, ws, we)
    p = we + 1
  end
  _, e = find(s, "^%s*", p)
  p = e + 1
  local last = #s - 2
  if last >= p and byte(s, last) == DASH then last = last - 1 end
  return name, sub(s, p, last), tok.pos + p - 1
end
M.split_tag = split_tag

local function strip_text_nodes(body)
  local out, n = {}, 0
  for i = 1, #body do
    local node = body[i]
    if node.t ~= "text" then
      n = n + 1
      out[n] = node
    end
  end
  return out
end
M.strip_text_nodes = strip_text_nodes

--- Explain an unexpected tag inside block `block` (or at the top level when nil).
function Parser:unexpected(name, block, pos)
  if block then
    if name == "else" or name == "elsif" or name == "when" then
      self:fail("Unexpected '" .. name .. "' in '" .. block .. "' block", pos)
    elseif sub(name, 1, 3) == "end" then
      self:fail("'" .. name .. "' is not a valid delimiter for " .. block .. " tags; use end" .. block, pos)
    end
  else
    if name == "else" or name == "elsif" or name == "when" or sub(name, 1, 3) == "end" then
      self:fail("Unexpected '" .. name .. "' outside a block", pos)
    end
  end
  self:fail("Unknown tag '" .. name .. "'", pos)
end

--- Parse statements until a tag that is not registered (an end tag, `else`, ...) or the end.
-- @treturn table nodes
-- @treturn boolean blank
-- @treturn string|nil name of the tag that stopped parsing
-- @treturn string|nil its markup
-- @treturn number|nil absolute offset of its markup
-- @treturn number|nil absolute offset of the tag
function Parser:parse_body(stream)
  if self.depth >= MAX_DEPTH then
    self:fail("Nesting too deep", self.last_pos)
  end
  self.depth = self.depth + 1
  local nodes, n, blank = {}, 0, true
  if stream.liquid then
    while true do
      local line = self:next(stream)
      if not line then break end
      local s = line.s
      if find(s, "[^%s]") then
        local lead, name, mstart
        lead, name = match(s, "^()%s*([#%w_]+)")
        local np = lead and find(s, "[^%s]", lead)
        if name and byte(name, 1) == 35 then name = "#" end
        if not name then
          self.depth = self.depth - 1
          return nodes, blank, s, s, line.pos, line.pos
        end
        mstart = select(2, find(s, "^%s*", np + #name)) + 1
        local markup = sub(s, mstart)
        local mpos, pos = line.pos + mstart - 1, line.pos + np - 1
        self.last_pos = pos
        if name == "liquid" then
          local node = self:parse_liquid(markup, mpos, pos)
          n = n + 1
          nodes[n] = node
          blank = blank and node.blank
        else
          local tag = tags[name]
          if not tag then
            self.depth = self.depth - 1
            return nodes, blank, name, markup, mpos, pos
          end
          local node = tag(self, stream, markup, mpos, pos)
          if node then
            n = n + 1
            nodes[n] = node
            blank = blank and node.blank
          end
        end
      end
    end
    self.depth = self.depth - 1
    return nodes, blank, nil
  end

  while true do
    local tok = self:next(stream)
    if not tok then break end
    local kind, s = tok.kind, tok.s
    if kind == "text" then
      if self.trim then s = text.lstrip(s) end
      self.trim = false
      if s ~= "" then
        n = n + 1
        nodes[n] = { t = "text", v = s }
        blank = blank and text.is_blank(s)
      end
    else
      if byte(s, 3) == DASH and n > 0 and nodes[n].t == "text" then
        local v = text.rstrip(nodes[n].v)
        if v == "" then
          nodes[n] = nil
          n = n - 1
        else
          nodes[n].v = v
        end
      end
      self.trim = not tok.unterminated and #s >= 5 and byte(s, -3) == DASH
      self.last_pos = tok.pos
      if kind == "output" then
        if tok.unterminated or sub(s, -2) ~= "}}" then
          self:fail("Variable '" .. s .. "' was not properly terminated with '}}'", tok.pos)
        end
        local first = 3
        if byte(s, 3) == DASH then first = 4 end
        local last = #s - 2
        if byte(s, last) == DASH then last = last - 1 end
        local markup = last >= first and sub(s, first, last) or ""
        local expr = expression.filtered(markup, tok.pos + first - 1, self:failer())
        n = n + 1
        nodes[n] = { t = "output", expr = expr, pos = tok.pos }
        blank = false
      else
        local name, markup, mpos = split_tag(tok)
        if not name then
          if tok.unterminated then
            self:fail("Tag '" .. s .. "' was not properly terminated with '%}'", tok.pos)
          end
          self:fail("Invalid tag '" .. s .. "'", tok.pos)
        end
        if name == "liquid" then
          local node = self:parse_liquid(markup, mpos, tok.pos)
          n = n + 1
          nodes[n] = node
          blank = blank and node.blank
        else
          local tag = tags[name]
          if not tag then
            self.depth = self.depth - 1
            return nodes, blank, name, markup, mpos, tok.pos
          end
          local node = tag(self, stream, markup, mpos, tok.pos)
          if node then
            n = n + 1
            nodes[n] = node
            blank = blank and node.blank
          end
        end
      end
    end
  end
  self.depth = self.depth - 1
  return nodes, blank, nil
end

--- Parse the body of block tag `block` up to its next delimiter; raises when the template
-- ends first.
function Parser:block_body(stream, block, pos)
  local nodes, blank, name, markup, mpos, epos = self:parse_body(stream)
  if name == nil then
    self:fail("'" .. block .. "' tag was never closed", pos)
  end
  return nodes, blank, name, markup, mpos, epos
end

--- The statements of `{% liquid %}` markup as a `group` node.
function Parser:parse_liquid(markup, mpos, pos)
  local lines, start = {}, 1
  while true do
    local nl = find(markup, "\n", start, true)
    local stop = nl and nl - 1 or #markup
    local line = sub(markup, start, stop)
    if byte(line, -1) == 13 then line = sub(line, 1, -2) end
    lines[#lines + 1] = { s = line, pos = mpos + start - 1 }
    if not nl then break end
    start = nl + 1
  end
  local stream = { liquid = true, lines = lines, i = 0 }
  local body, blank, name, _, _, epos = self:parse_body(stream)
  if name ~= nil then
    self:fail("Unknown tag '" .. name .. "' in liquid tag", epos or pos)
  end
  return { t = "group", body = body, blank = blank, pos = pos }
end

-- Raw tag bodies: tokens up to the `{% endraw %}` (which may follow text in the same token).
local function endraw_prefix(s)
  if sub(s, -2) ~= "%}" then return nil end
  local positions, n, p = {}, 0, 1
  while true do
    local i = find(s, "{%", p, true)
    if not i then break end
    n = n + 1
    positions[n] = i
    p = i + 1
  end
  for k = n, 1, -1 do
    local i = positions[k]
    local word = match(s, "^{%%%-?%s*([%w_]+)", i)
    if word then
      if word == "endraw" then return sub(s, 1, i - 1) end
      return nil
    end
  end
  return nil
end

function Parser:raw_body(stream, pos)
  if stream.liquid then self:fail("'raw' is not allowed in a liquid tag", pos) end
  local parts, n = {}, 0
  while true do
    local tok = self:next(stream)
    if not tok then self:fail("'raw' tag was never closed", pos) end
    local s = tok.s
    local prefix = (tok.kind ~= "text" or find(s, "{%", 1, true)) and endraw_prefix(s)
    if prefix then
      if prefix ~= "" then n = n + 1; parts[n] = prefix end
      self.trim = byte(s, -3) == DASH
      return concat(parts, "", 1, n)
    end
    n = n + 1
    parts[n] = s
  end
end

--- Parse `source` into a document node.
-- @tparam string source
-- @tparam[opt] table opts parse options (kept on the parser for tags that need them);
--   `max_tokens` bounds the template's tokens (text runs, tags, outputs and the tokens of
--   every expression), raising a `limit` error past it
-- @treturn table `{ t = "document", body = nodes, slots = n }`
function M.parse(source, opts)
  opts = opts or {}
  local max_tokens = opts.max_tokens or math.huge
  local tokens, over = lexer.tokenize(source, max_tokens)
  local p = setmetatable({
    source = source,
    tokens = tokens,
    ti = 0,
    trim = false,
    depth = 0,
    slots = 0,
    locate = lexer.locator(source),
    opts = opts,
    last_pos = 1,
    max_tokens = max_tokens,
    tokens_left = max_tokens,
  }, Parser)
  p.failer_obj = setmetatable({ parser = p }, Failer)
  if over then p.failer_obj:over(over) end
  local stream = { liquid = false }
  local body, _, name, _, _, pos = p:parse_body(stream)
  if name ~= nil then p:unexpected(name, nil, pos) end
  return { t = "document", body = body, slots = p.slots, locate = p.locate }
end

-- ---------------------------------------------------------------------------------------
-- Standard tags

tags["assign"] = function(p, _, markup, mpos, pos)
  local name, eq = match(markup, "^%s*([^%s=]+)%s*()=")
  if not name or not find(name, "^[%w_%-]+$") then
    p:fail("Syntax error in 'assign' - Valid syntax: assign [var] = [source]", pos)
  end
  local value = expression.filtered(sub(markup, eq + 1), mpos + eq, p:failer())
  return { t = "assign", name = name, value = value, blank = true, pos = pos }
end

tags["capture"] = function(p, stream, markup, _, pos)
  local _, name = match(markup, "^%s*(['\"]?)([%w_%-]+)%1%s*$")
  if not name then
    p:fail("Syntax error in 'capture' - Valid syntax: capture [var]", pos)
  end
  local body, _, ename, _, _, epos = p:block_body(stream, "capture", pos)
  if ename ~= "endcapture" then p:unexpected(ename, "capture", epos) end
  return { t = "capture", name = name, body = body, blank = true, pos = pos }
end

local function conditional(kind)
  return function(p, stream, markup, mpos, pos)
    local fail = p:failer()
    local branches = {}
    local current = { cond = expression.condition(markup, mpos, fail), pos = pos }
    local all_blank = true
    while true do
      local body, blank, ename, emarkup, empos, epos = p:block_body(stream, kind, pos)
      current.body = body
      branches[#branches + 1] = current
      all_blank = all_blank and blank
      if ename == "end" .. kind then
        break
      elseif ename == "elsif" then
        current = { cond = expression.condition(emarkup, empos, fail), pos = epos }
      elseif ename == "else" then
        current = { cond = nil, pos = epos }
      else
        p:unexpected(ename, kind, epos)
      end
    end
    if all_blank then
      for i = 1, #branches do branches[i].body = strip_text_nodes(branches[i].body) end
    end
    return { t = kind, branches = branches, blank = all_blank, pos = pos }
  end
end
tags["if"] = conditional("if")
tags["unless"] = conditional("unless")

tags["case"] = function(p, stream, markup, mpos, pos)
  local fail = p:failer()
  local ep = expression.new(markup, mpos, fail)
  local subject = ep:primary()
  ep:finish()
  local blocks = {}
  local _, all_blank, ename, emarkup, empos, epos = p:block_body(stream, "case", pos)
  while ename ~= "endcase" do
    local block
    if ename == "when" then
      local wp = expression.new(emarkup, empos, fail)
      block = { values = wp:when_values(p.opts.error_mode == "strict2"), pos = epos }
    elseif ename == "else" then
      if find(emarkup, "[^%s]") then
        p:fail("Syntax error in tag 'case' - Valid else condition: {% else %} (no parameters)", epos)
      end
      block = { is_else = true, pos = epos }
    else
      p:unexpected(ename, "case", epos)
    end
    local body, blank
    body, blank, ename, emarkup, empos, epos = p:block_body(stream, "case", pos)
    block.body = body
    all_blank = all_blank and blank
    blocks[#blocks + 1] = block
  end
  if all_blank then
    for i = 1, #blocks do blocks[i].body = strip_text_nodes(blocks[i].body) end
  end
  return { t = "case", subject = subject, blocks = blocks, blank = all_blank, pos = pos }
end

tags["for"] = function(p, stream, markup, mpos, pos)
  local fail = p:failer()
  local ep = expression.new(markup, mpos, fail)
  local var = ep:expect("id", "a loop variable").value
  if not ep:accept("id", "in") then
    ep:error("Syntax error in 'for loop' - Valid syntax: for [item] in [collection]")
  end
  local coll = ep:primary()
  local node = { t = "for", var = var, coll = coll, name = var .. "-" .. coll.text, pos = pos }
  while not ep:at_end() do
    if ep:accept("id", "reversed") then
      node.reversed = true
    elseif ep:accept(",") then -- luacheck: ignore 542 (commas between attributes are optional)
    else
      local tok = ep:peek()
      local nxt = ep:peek(1)
      if tok.type == "id" and (tok.value == "limit" or tok.value == "offset") and nxt.type == ":" then
        ep:advance()
        ep:advance()
        local arg = ep:peek()
        if tok.value == "offset" and arg.type == "id" and arg.value == "continue"
          and ep:peek(1).type ~= "." and ep:peek(1).type ~= "[" then
          ep:advance()
          node.continue = true
          node.offset = nil
        else
          node[tok.value] = ep:primary()
          if tok.value == "offset" then node.continue = nil end
        end
      else
        ep:error("Invalid attribute '" .. tok.value .. "' in for loop. Valid attributes are limit and offset")
      end
    end
  end
  p.slots = p.slots + 1
  node.slot = p.slots
  local body, blank, ename, _, _, epos = p:block_body(stream, "for", pos)
  node.body = body
  while ename == "else" do
    local else_body, else_blank
    else_body, else_blank, ename, _, _, epos = p:block_body(stream, "for", pos)
    node.else_body = else_body
    blank = blank and else_blank
  end
  if ename ~= "endfor" then p:unexpected(ename, "for", epos) end
  if blank then
    node.body = strip_text_nodes(node.body)
    if node.else_body then node.else_body = strip_text_nodes(node.else_body) end
  end
  node.blank = blank
  return node
end

tags["break"] = function(_, _, _, _, pos)
  return { t = "break", blank = false, pos = pos }
end

tags["continue"] = function(_, _, _, _, pos)
  return { t = "continue", blank = false, pos = pos }
end

tags["echo"] = function(p, _, markup, mpos, pos)
  return { t = "output", expr = expression.filtered(markup, mpos, p:failer()), blank = false, pos = pos }
end

tags["cycle"] = function(p, _, markup, mpos, pos)
  local ep = expression.new(markup, mpos, p:failer())
  if ep:at_end() then p:fail("Syntax error in 'cycle' - Valid syntax: cycle [name :] var [, var2, var3 ...]", pos) end
  local first = ep:primary()
  local node = { t = "cycle", values = {}, blank = false, pos = pos }
  if ep:accept(":") then
    node.group = first
    node.values[1] = ep:primary()
  else
    node.values[1] = first
  end
  while ep:accept(",") do
    if ep:at_end() then break end
    node.values[#node.values + 1] = ep:primary()
  end
  ep:finish()
  if not node.group then
    local parts, literal = {}, true
    for i = 1, #node.values do
      local v = node.values[i]
      if v.t ~= "lit" then literal = false break end
      parts[i] = values.inspect(v.v)
    end
    if literal then
      node.key = "[" .. concat(parts, ", ") .. "]"
    else
      node.key = "cycle@" .. pos
    end
  end
  return node
end

local function counter(delta)
  return function(p, _, markup, _, pos)
    local name = text.strip(markup)
    if name == "" then p:fail("Syntax error in 'increment' - Valid syntax: increment [var]", pos) end
    return { t = "counter", name = name, delta = delta, blank = false, pos = pos }
  end
end
tags["increment"] = counter(1)
tags["decrement"] = counter(-1)

tags["raw"] = function(p, stream, markup, _, pos)
  if find(markup, "[^%s]") then
    p:fail("Syntax error in 'raw' - Valid syntax: raw", pos)
  end
  local body = p:raw_body(stream, pos)
  return { t = "text", v = body, blank = body == "", pos = pos }
end

local function skip_raw(p, stream, pos)
  while true do
    local tok = p:next(stream)
    if not tok then p:fail("'raw' tag was never closed", pos) end
    if tok.s and endraw_prefix(tok.s) then return end
  end
end

tags["comment"] = function(p, stream, _, _, pos)
  local depth = 1
  while true do
    local tok = p:next(stream)
    if not tok then p:fail("'comment' tag was never closed", pos) end
    local name
    if stream.liquid then
      name = match(tok.s, "^%s*([#%w_]+)")
    elseif tok.kind == "tag" then
      name = split_tag(tok)
    end
    if name == "raw" then
      skip_raw(p, stream, pos)
    elseif name == "comment" then
      depth = depth + 1
    elseif name == "endcomment" then
      depth = depth - 1
      if depth == 0 then
        if not stream.liquid then p.trim = byte(tok.s, -3) == DASH end
        return { t = "comment", blank = true, pos = pos }
      end
    end
  end
end

tags["#"] = function(p, _, markup, _, pos)
  if find(markup, "\n%s*[^#%s]") then
    p:fail("Syntax error in tag '#' - Each line of comments must be prefixed by the '#' character", pos)
  end
  return { t = "comment", blank = true, pos = pos }
end

return M
