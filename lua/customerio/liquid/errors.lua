--- Liquid error objects.
--
-- Every failure of `customerio.liquid` (a bad template, a filter given bad input, a limit
-- reached, an undefined variable in strict mode) is reported as `nil, err` where `err` is a
-- table made here:
--
--     { kind = "syntax" | "undefined_variable" | "undefined_filter" | "argument" | "limit"
--              | "internal",
--       message = "Unknown tag 'foo'", line = 3, column = 5, variable = "trigger.x" (optional) }
--
-- `tostring(err)` gives `"line 3, column 5: Unknown tag 'foo'"` (just the message when the
-- position is unknown). Errors concatenate with strings.
-- @module customerio.liquid.errors

local setmetatable, getmetatable, tostring, type, error = setmetatable, getmetatable, tostring, type, error

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "customerio.liquid.Error"

Error.__tostring = function(e)
  if e.line then
    return "line " .. e.line .. ", column " .. (e.column or 1) .. ": " .. e.message
  end
  return e.message
end

Error.__concat = function(a, b)
  return tostring(a) .. tostring(b)
end

M.Error = Error

--- Make an error object.
-- @tparam string kind one of the kinds listed above
-- @tparam string message human readable text
-- @tparam[opt] number line 1-based line in the template source
-- @tparam[opt] number column 1-based column (in characters)
-- @treturn table the error (with `__tostring`)
function M.new(kind, message, line, column)
  return setmetatable({ kind = kind, message = message, line = line, column = column }, Error)
end

--- True when `v` is an error object made by this module.
-- @param v any value
-- @treturn boolean
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- Raise an error object (used inside the engine; the public API catches it).
-- @tparam string kind
-- @tparam string message
-- @tparam[opt] number line
-- @tparam[opt] number column
function M.raise(kind, message, line, column)
  error(M.new(kind, message, line, column), 0)
end

--- Raise an `argument` error without a position; the renderer adds the position of the
-- node being rendered.
-- @tparam string message
function M.argument(message)
  error(setmetatable({ kind = "argument", message = message }, Error), 0)
end

return M
