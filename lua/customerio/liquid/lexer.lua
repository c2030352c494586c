--- Liquid lexing in two stages.
--
-- Stage 1 (`tokenize`) splits a template into text, `{{ output }}` and `{% tag %}` tokens
-- the way Shopify Liquid's tokenizer does (a tag ends at the first `%}`, an output at the
-- first `}}`), keeping each token's byte offset. Stage 2 (`scan`) splits the markup of one
-- tag or output into expression tokens.
-- @module customerio.liquid.lexer

local text = require("customerio.liquid.text")

local find, sub, byte, match, gsub = string.find, string.sub, string.byte, string.match, string.gsub

local M = {}

local CLOSE_CURLY, PERCENT = 125, 37

--- The message `scan` returns when a markup has more tokens than allowed.
M.TOO_MANY = "too many tokens"

--- Split a template into tokens.
-- Each token is `{ kind = "text" | "tag" | "output", s = token_text, pos = byte_offset }`.
-- An output whose `}}` is missing yields an `output` token that does not end in `}}`; the
-- parser reports it.
-- @tparam string source
-- @tparam[opt] number max most tokens to read
-- @treturn table array of tokens
-- @treturn number|nil byte offset of the first token past `max`, when there is one
function M.tokenize(source, max)
  local tokens, n = {}, 0
  local pos, len = 1, #source
  max = max or math.huge
  while pos <= len do
    if n >= max then return tokens, pos end
    local start = find(source, "{[{%%]", pos)
    if start ~= pos then
      local stop = start and start - 1 or len
      n = n + 1
      tokens[n] = { kind = "text", s = sub(source, pos, stop), pos = pos }
      if not start then break end
      pos = start
    end
    local second = byte(source, pos + 1)
    if second == PERCENT then
      local _, e = find(source, "%}", pos + 2, true)
      if e then
        n = n + 1
        tokens[n] = { kind = "tag", s = sub(source, pos, e), pos = pos }
        pos = e + 1
      else
        n = n + 1
        tokens[n] = { kind = "tag", s = sub(source, pos), pos = pos, unterminated = true }
        pos = len + 1
      end
    else
      -- an output: scan for "}}", a lone "}" or an embedded "{%"
      local i = pos + 2
      local stop, kind = nil, "output"
      while true do
        local j = find(source, "[{}]", i)
        if not j then break end
        local c, d = byte(source, j), byte(source, j + 1)
        if c == CLOSE_CURLY then
          if d == CLOSE_CURLY then stop = j + 1 else stop = j end
          break
        elseif d == PERCENT then
          local _, e = find(source, "%}", j + 2, true)
          stop = e or len
          break
        end
        i = j + 1
      end
      if not stop then
        n = n + 1
        tokens[n] = { kind = kind, s = sub(source, pos), pos = pos, unterminated = true }
        pos = len + 1
      else
        n = n + 1
        tokens[n] = { kind = kind, s = sub(source, pos, stop), pos = pos }
        pos = stop + 1
      end
    end
  end
  return tokens
end

--- A function mapping a byte offset of `source` to `line, column` (1-based; the column
-- counts UTF-8 characters). Lookups cost O(log lines) for ASCII text.
-- @tparam string source
-- @treturn function
function M.locator(source)
  local starts = { 1 }
  local n = 1
  local p = 1
  while true do
    local nl = find(source, "\n", p, true)
    if not nl then break end
    n = n + 1
    starts[n] = nl + 1
    p = nl + 1
  end
  local ascii = not find(source, "[\128-\255]")
  -- For non-ASCII text: continuation bytes before each 256-byte block, filled on demand.
  local BLOCK = 256
  local cum, filled = { [0] = 0 }, 0
  local function continuation_before(x) -- continuation bytes in source[1 .. x-1]
    local b = math.floor((x - 1) / BLOCK)
    while filled < b do
      local from = filled * BLOCK + 1
      local _, c = gsub(sub(source, from, from + BLOCK - 1), "[\128-\191]", "")
      filled = filled + 1
      cum[filled] = cum[filled - 1] + c
    end
    local from = b * BLOCK + 1
    local extra = 0
    if x > from then
      local _, c = gsub(sub(source, from, x - 1), "[\128-\191]", "")
      extra = c
    end
    return cum[b] + extra
  end
  return function(pos)
    local lo, hi = 1, n
    while lo < hi do
      local mid = math.floor((lo + hi + 1) / 2)
      if starts[mid] <= pos then lo = mid else hi = mid - 1 end
    end
    local line_start = starts[lo]
    if ascii then return lo, pos - line_start + 1 end
    return lo, pos - line_start + 1 - (continuation_before(pos) - continuation_before(line_start))
  end
end

local SINGLE = {
  [124] = "|", [58] = ":", [44] = ",", [91] = "[", [93] = "]", [40] = "(", [41] = ")", [63] = "?",
}

--- Split tag or output markup into expression tokens.
-- Tokens are `{ type = ..., value = text, pos = byte_offset_in_markup }` with types `id`,
-- `number`, `string` (value without quotes), `cmp` (`== != <> < > <= >= contains`), `.`,
-- `..`, `|`, `:`, `,`, `[`, `]`, `(`, `)`, `?`, `-`, and a final `eos`.
-- @tparam string s the markup
-- @tparam[opt] number max most tokens to read (without `eos`); past it `scan` returns
--   `nil, lexer.TOO_MANY, offset`
-- @treturn table|nil tokens
-- @treturn string error message
-- @treturn number byte offset of the error in `s`
function M.scan(s, max)
  local toks, n = {}, 0
  local pos = 1
  max = max or math.huge
  while true do
    pos = find(s, "[^%s]", pos)
    if not pos then break end
    if n >= max then return nil, M.TOO_MANY, pos end
    local c = byte(s, pos)
    local single = SINGLE[c]
    if single then
      n = n + 1
      toks[n] = { type = single, value = single, pos = pos }
      pos = pos + 1
    elseif c == 46 then -- "."
      if byte(s, pos + 1) == 46 then
        n = n + 1
        toks[n] = { type = "..", value = "..", pos = pos }
        pos = pos + 2
      else
        n = n + 1
        toks[n] = { type = ".", value = ".", pos = pos }
        pos = pos + 1
      end
    elseif c == 39 or c == 34 then -- quotes
      local close = find(s, c == 39 and "'" or '"', pos + 1, true)
      if not close then
        return nil, "Unexpected character " .. sub(s, pos, pos), pos
      end
      n = n + 1
      toks[n] = { type = "string", value = sub(s, pos + 1, close - 1), pos = pos }
      pos = close + 1
    elseif (c >= 48 and c <= 57) or (c == 45 and find(s, "^%d", pos + 1)) then
      local _, e = find(s, "^%-?%d+", pos)
      local _, e2 = find(s, "^%.%d+", e + 1)
      if e2 then e = e2 end
      n = n + 1
      toks[n] = { type = "number", value = sub(s, pos, e), pos = pos }
      pos = e + 1
    elseif c == 45 then
      n = n + 1
      toks[n] = { type = "-", value = "-", pos = pos }
      pos = pos + 1
    elseif find(s, "^[%a_]", pos) then
      local _, e = find(s, "^[%w_%-]*", pos + 1)
      if byte(s, e + 1) == 63 then e = e + 1 end
      local word = sub(s, pos, e)
      n = n + 1
      if word == "contains" and not (n > 1 and toks[n - 1].type == ".") then
        toks[n] = { type = "cmp", value = word, pos = pos }
      else
        toks[n] = { type = "id", value = word, pos = pos }
      end
      pos = e + 1
    elseif c == 61 or c == 33 then -- "=" "!"
      if byte(s, pos + 1) == 61 then
        n = n + 1
        toks[n] = { type = "cmp", value = sub(s, pos, pos + 1), pos = pos }
        pos = pos + 2
      else
        return nil, "Unexpected character " .. sub(s, pos, pos), pos
      end
    elseif c == 60 or c == 62 then -- "<" ">"
      local d = byte(s, pos + 1)
      if d == 61 or (c == 60 and d == 62) then
        n = n + 1
        toks[n] = { type = "cmp", value = sub(s, pos, pos + 1), pos = pos }
        pos = pos + 2
      else
        n = n + 1
        toks[n] = { type = "cmp", value = sub(s, pos, pos), pos = pos }
        pos = pos + 1
      end
    else
      local ch = match(s, "^" .. text.CHAR, pos) or sub(s, pos, pos)
      return nil, "Unexpected character " .. ch, pos
    end
  end
  n = n + 1
  toks[n] = { type = "eos", value = "end of expression", pos = #s + 1 }
  return toks
end

return M
