-- The C core's JSON codec (src/json_encode.c, src/json_decode.c): core.json_encode / core.json_decode, null, array_mt,
-- object_mt. Object key order is unspecified (and random on LuaJIT), so objects with more than
-- one key are compared after decoding; scalars and arrays are compared as exact text.
local core = require("customerio.core")

local encode, decode, null = core.json_encode, core.json_decode, core.null
local has_integers = math.type ~= nil
-- Highest max_depth accepted: Lua 5.1 and LuaJIT allow a C function 8000 stack slots
local DEPTH_LIMIT = (type(jit) == "table" or _VERSION == "Lua 5.1") and 1900 or 10000

-- encode must succeed; returns the text
local function enc(v, opts)
  local s, err = encode(v, opts)
  assert(s, err)
  assert.is_nil(err)
  return s
end

-- encode must fail with exactly this message
local function enc_err(v, msg, opts)
  local s, err = encode(v, opts)
  assert.is_nil(s)
  assert.are.equal(msg, err)
end

local function dec(text, opts)
  local v, err = decode(text, opts)
  assert(v ~= nil, err)
  return v
end

local function dec_err(text, msg, opts)
  local v, err = decode(text, opts)
  assert.is_nil(v)
  assert.are.equal(msg, err)
end

local function nest(n) -- n tables, one inside the other
  local t = {}
  for _ = 2, n do t = { t } end
  return t
end

describe("core json exports", function()
  it("null is the NULL light userdata", function()
    assert.are.equal("userdata", type(null))
    local ok, cjson = pcall(require, "cjson")
    if ok then assert.are.equal(cjson.null, null) end
  end)

  it("array_mt and object_mt are shared marker tables", function()
    assert.are.equal("array", core.array_mt.__jsontype)
    assert.are.equal("object", core.object_mt.__jsontype)
    assert.are.equal(core.array_mt, getmetatable(dec("[]")))
    assert.are.equal(core.array_mt, getmetatable(dec("[[1]]")[1]))
  end)
end)

describe("core.json_encode scalars", function()
  it("encodes literals", function()
    assert.are.equal("true", enc(true))
    assert.are.equal("false", enc(false))
    assert.are.equal("null", enc(nil))
    assert.are.equal("null", enc(null))
  end)

  it("encodes cjson.null and any NULL light userdata as null", function()
    local ok, cjson = pcall(require, "cjson")
    if ok then
      assert.are.equal("[null]", enc({ cjson.null }))
      assert.are.equal('{"a":null}', enc({ a = cjson.null }))
    end
    assert.are.equal("[1,null,2]", enc({ 1, null, 2 }))
  end)

  it("prints integral numbers without a fraction", function()
    assert.are.equal("0", enc(0))
    assert.are.equal("42", enc(42))
    assert.are.equal("-7", enc(-7))
    assert.are.equal("1700000000", enc(1700000000))
    assert.are.equal("1700000000000", enc(1700000000000))
    assert.are.equal("3", enc(3.0))
    assert.are.equal("-3", enc(-3.0))
    assert.are.equal("9007199254740991", enc(2 ^ 53 - 1))
    assert.are.equal("9007199254740992", enc(2 ^ 53))
    assert.are.equal("-9007199254740992", enc(-(2 ^ 53)))
  end)

  it("prints -0 as 0", function()
    assert.are.equal("0", enc(-0.0))
    assert.are.equal("[0]", enc({ -0.0 }))
  end)

  it("prints int64 extremes exactly", function()
    if not has_integers then return end
    assert.are.equal("9223372036854775807", enc(math.maxinteger))
    assert.are.equal("-9223372036854775808", enc(math.mininteger))
    assert.are.equal("9007199254740993", enc(9007199254740993))
    assert.are.equal("[1686041011364000000]", enc({ 1686041011364000000 }))
  end)

  it("prints floats in their shortest round-trip form", function()
    assert.are.equal("0.1", enc(0.1))
    assert.are.equal("-0.1", enc(-0.1))
    assert.are.equal("1.5", enc(1.5))
    assert.are.equal("19.99", enc(19.99))
    assert.are.equal("259.87", enc(259.87))
    assert.are.equal("-89.6501", enc(-89.6501))
    assert.are.equal("0.0001", enc(0.0001))
    assert.are.equal("0.30000000000000004", enc(0.1 + 0.2))
    assert.are.equal("0.3333333333333333", enc(1 / 3))
    assert.are.equal("1e-7", enc(1e-7))
    assert.are.equal("1.5e-5", enc(1.5e-5))
    assert.are.equal("1e+21", enc(1e21))
    assert.are.equal("1e+300", enc(1e300))
    assert.are.equal("-2.5e-300", enc(-2.5e-300))
    assert.are.equal("123456789012345.6", enc(123456789012345.6))
    assert.are.equal("9007199254740994", enc(2 ^ 53 + 2))
    assert.are.equal("1.8446744073709552e+19", enc(2 ^ 64))
  end)

  it("round-trips doubles exactly", function()
    local values = { 0.1, 0.2, 0.7, 1 / 3, 2 / 3, math.pi, -math.pi, 1e-7, 1e-300, 5e-324, 2.2250738585072014e-308,
      1.7976931348623157e308, 123.456, 99.99, 0.015, 1e15 + 0.5, 4503599627370495.5, 1e22, 1e23, 2 ^ 60, 12345.678e-20 }
    for i = 1, 200 do values[#values + 1] = (i * 7919 % 10007) / 997 * 10 ^ (i % 40 - 20) end
    for _, x in ipairs(values) do
      local s = enc(x)
      assert.are.equal(x, tonumber(s), s)
      assert.are.equal(x, dec(s), s)
      assert.is_nil(s:find("[^%d%.eE+-]"), s)
    end
  end)

  it("is independent of the C locale's decimal point", function()
    local old = os.setlocale(nil, "numeric")
    local ok = os.setlocale("de_DE.UTF-8", "numeric") or os.setlocale("fr_FR.UTF-8", "numeric")
    local a, b, c = enc(1 / 3), enc({ 2.5, 1e-7 }), decode("[2.5,-0.125]")
    os.setlocale(old, "numeric")
    assert.are.equal("0.3333333333333333", a)
    assert.are.equal("[2.5,1e-7]", b)
    assert.are.same({ 2.5, -0.125 }, c)
    if not ok then
      -- e.g. localedef -i de_DE -f UTF-8 /tmp/loc/de_DE.UTF-8 and run busted with LOCPATH=/tmp/loc
      pending("no de_DE/fr_FR locale installed: only the C locale was checked")
    end
  end)

  it("refuses NaN and infinities with the path", function()
    enc_err(0 / 0, "value: cannot encode NaN")
    enc_err(math.huge, "value: cannot encode inf")
    enc_err(-math.huge, "value: cannot encode -inf")
    enc_err({ items = { { price = 1 }, { price = 2 }, { price = 0 / 0 } } }, "data.items[3].price: cannot encode NaN",
      { root = "data" })
  end)

  it("refuses functions, threads and userdata, naming the type", function()
    enc_err(print, "value: cannot encode function")
    enc_err({ f = print }, "value.f: cannot encode function")
    enc_err({ 1, coroutine.create(function() end) }, "value[2]: cannot encode thread")
    enc_err({ io.stdout }, "value[1]: cannot encode userdata")
  end)
end)

describe("core.json_encode strings", function()
  it("escapes quotes, backslashes and control characters only", function()
    assert.are.equal('"plain"', enc("plain"))
    assert.are.equal('""', enc(""))
    assert.are.equal('"a\\"b\\\\c"', enc('a"b\\c'))
    assert.are.equal('"\\b\\f\\n\\r\\t"', enc("\b\f\n\r\t"))
    assert.are.equal('"\\u0000\\u0001\\u001f"', enc("\0\1\31"))
    assert.are.equal('"x\\u0000y"', enc("x\0y"))
    assert.are.equal('"https://example.com/a/b"', enc("https://example.com/a/b"))
    assert.are.equal('"\127 ~"', enc("\127 ~"))
  end)

  it("escapes inside long strings (word-at-a-time scan)", function()
    local s = string.rep("abcdefgh", 5) .. '"' .. string.rep("x", 13) .. "\n" .. string.rep("é", 9) .. "\\"
    local want = '"' .. string.rep("abcdefgh", 5) .. '\\"' .. string.rep("x", 13) .. "\\n" .. string.rep("é", 9) .. '\\\\"'
    assert.are.equal(want, enc(s))
    local big = string.rep("0123456789", 10000)
    assert.are.equal('"' .. big .. '"', enc(big))
    assert.are.equal(big .. "\n", dec(enc(big .. "\n")))
  end)

  it("passes valid UTF-8 through raw", function()
    assert.are.equal('"Zoë Ångström — 東京 😀"', enc("Zoë Ångström — 東京 😀"))
    assert.are.equal('"\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"', enc("\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"))
  end)

  it("rejects invalid UTF-8 in strings and keys", function()
    local bad = {
      "\128", "\191", "abc\255", "\192\175", "\193\191", -- stray continuation, 0xFF, overlongs
      "\224\128\175", "\240\128\128\175", -- overlong 3 and 4 byte forms
      "\237\160\128", "\237\191\191", -- UTF-16 surrogates (CESU-8)
      "\244\144\128\128", "\245\128\128\128", -- above U+10FFFF
      "\226\130", "é\195", "\240\159\152", -- truncated
      "\226\40\161", -- bad continuation
    }
    for _, s in ipairs(bad) do
      enc_err(s, "value: invalid UTF-8 in string")
      enc_err({ list = { "ok", s } }, "data.list[2]: invalid UTF-8 in string", { root = "data" })
      enc_err({ attrs = { [s] = 1 } }, "value.attrs: invalid UTF-8 in key")
    end
  end)
end)

describe("core.json_encode tables", function()
  it("encodes sequences as arrays and string-keyed tables as objects", function()
    assert.are.equal("[1,2,3]", enc({ 1, 2, 3 }))
    assert.are.equal('["a",["b",[true]]]', enc({ "a", { "b", { true } } }))
    assert.are.equal('{"a":1}', enc({ a = 1 }))
    assert.are.equal('{"a":{"b":{"c":"d"}}}', enc({ a = { b = { c = "d" } } }))
    local t = { name = "x", n = 1, list = { 1, 2 }, obj = { k = "v" }, yes = true }
    assert.are.same(t, dec(enc(t)))
  end)

  it("encodes an empty table as {}", function()
    assert.are.equal("{}", enc({}))
    assert.are.equal('{"a":{}}', enc({ a = {} }))
  end)

  it("accepts 1..n keys in any insertion order", function()
    local t = {}
    t[3], t[1], t[2] = "c", "a", "b"
    assert.are.equal('["a","b","c"]', enc(t))
    local u = { 1, 2 }
    u[5], u[4], u[3] = 5, 4, 3
    assert.are.equal("[1,2,3,4,5]", enc(u))
    local big = {}
    for i = 1000, 1, -1 do big[i] = i end
    assert.are.equal(dec(enc(big))[1000], 1000)
    assert.are.equal(1000, #dec(enc(big)))
  end)

  it("refuses sparse arrays", function()
    enc_err({ [1] = 1, [3] = 3 }, "value: sparse array")
    enc_err({ [2] = "x" }, "value: sparse array")
    enc_err({ [0] = "x" }, "value: sparse array")
    enc_err({ [-1] = "x", [1] = "y" }, "value: sparse array")
    enc_err({ list = { 1, 2, nil, 4 } }, "value.list: sparse array")
  end)

  it("refuses mixed tables", function()
    enc_err({ 1, 2, x = 3 }, "value: mixed table (both array and object keys)")
    enc_err({ a = { [1] = "a", b = "b" } }, "value.a: mixed table (both array and object keys)")
    enc_err({ [5] = 1, name = "n" }, "value: mixed table (both array and object keys)")
  end)

  it("refuses keys that are neither strings nor integers", function()
    enc_err({ [true] = 1 }, "value: cannot encode key of type boolean")
    enc_err({ [1.5] = 1 }, "value: cannot encode key of type float")
    enc_err({ x = { [{}] = 1 } }, "value.x: cannot encode key of type table")
    enc_err({ [print] = 1 }, "value: cannot encode key of type function")
  end)

  it("honours array_mt and __jsontype = 'array' (nil holes become null)", function()
    assert.are.equal("[]", enc(setmetatable({}, core.array_mt)))
    assert.are.equal('{"tags":[]}', enc({ tags = setmetatable({}, core.array_mt) }))
    assert.are.equal("[]", enc(setmetatable({}, { __jsontype = "array" })))
    assert.are.equal("[1,null,3]", enc(setmetatable({ 1, null, 3 }, core.array_mt)))
    -- With a nil hole, #t is any border (3 on Lua 5.4, 1 on LuaJIT): 1..#t is written.
    local holes = { 1, 2, 3 }
    holes[2] = nil
    local want = {}
    for i = 1, #holes do want[i] = holes[i] == nil and "null" or tostring(holes[i]) end
    assert.are.equal("[" .. table.concat(want, ",") .. "]", enc(setmetatable(holes, core.array_mt)))
    if _VERSION == "Lua 5.4" and not jit then assert.are.equal("[1,null,3]", enc(setmetatable(holes, core.array_mt))) end
    assert.are.equal("[1,2]", enc(setmetatable({ 1, 2, extra = "ignored" }, { __jsontype = "array" })))
  end)

  it("honours object_mt and __jsontype = 'object' (integer keys become strings)", function()
    assert.are.equal("{}", enc(setmetatable({}, core.object_mt)))
    assert.are.equal("{}", enc(setmetatable({}, { __jsontype = "object" })))
    assert.are.equal('{"1":"a"}', enc(setmetatable({ "a" }, core.object_mt)))
    assert.are.same({ ["1"] = "a", ["2"] = "b", x = 1 }, dec(enc(setmetatable({ "a", "b", x = 1 }, core.object_mt))))
    assert.are.equal('{"-5":true}', enc(setmetatable({ [-5] = true }, { __jsontype = "object" })))
    enc_err(setmetatable({ [1] = "x", ["1"] = "y" }, core.object_mt), 'value: duplicate key "1"')
    enc_err(setmetatable({ [2.5] = "x" }, core.object_mt), "value: cannot encode key of type float")
  end)

  it("writes __jsonorder keys first, in order, then the rest", function()
    local mt = { __jsonorder = { "c", "a", "missing", "a" } }
    assert.are.equal('{"c":3,"a":1,"b":2}', enc(setmetatable({ a = 1, b = 2, c = 3 }, mt)))
    assert.are.equal('{"c":3,"a":1}', enc(setmetatable({ a = 1, c = 3 }, mt)))
    assert.are.equal("{}", enc(setmetatable({}, mt)))
    assert.are.equal('{"2":"b","1":"a"}', enc(setmetatable({ "a", "b" }, { __jsonorder = { 2, 1 } })))
    enc_err(setmetatable({ x = { 0 / 0 } }, { __jsonorder = { "x" } }), "value.x[1]: cannot encode NaN")
  end)

  it("reads tables raw: __index, __pairs and __len are ignored", function()
    local mt = {
      __index = function() return "virtual" end,
      __pairs = function() error("__pairs must not be called") end,
      __len = function() return 10 end,
    }
    assert.are.equal('{"a":1}', enc(setmetatable({ a = 1 }, mt)))
    assert.are.equal("[1,2]", enc(setmetatable({ 1, 2 }, mt)))
  end)

  it("names paths the Lua way", function()
    local cases = {
      { { a = { b = { 1, { c = 0 / 0 } } } }, "data.a.b[2].c" },
      { { ["a b"] = 0 / 0 }, 'data["a b"]' },
      { { ["end"] = 0 / 0 }, 'data["end"]' },
      { { ["1x"] = 0 / 0 }, 'data["1x"]' },
      { { [""] = 0 / 0 }, 'data[""]' },
      { { ['say "hi"\n'] = 0 / 0 }, 'data["say \\"hi\\"\\n"]' },
      { { _ok9 = 0 / 0 }, "data._ok9" },
      { setmetatable({ [7] = { 0 / 0 } }, core.object_mt), "data[7][1]" },
    }
    for _, c in ipairs(cases) do
      enc_err(c[1], c[2] .. ": cannot encode NaN", { root = "data" })
    end
    enc_err({ 0 / 0 }, "body[1]: cannot encode NaN", { root = "body" })
  end)

  it("detects reference cycles but allows shared subtables", function()
    local t = {}
    t.self = t
    enc_err(t, "value.self: reference cycle")
    local a = { b = {} }
    a.b.list = { 1, a }
    enc_err(a, "value.b.list[2]: reference cycle")
    local arr = setmetatable({}, core.array_mt)
    arr[1] = arr
    enc_err(arr, "value[1]: reference cycle")
    local shared = { 1, 2 }
    assert.are.same({ x = { 1, 2 }, y = { 1, 2 } }, dec(enc({ x = shared, y = shared })))
  end)

  it("limits nesting depth", function()
    assert.are.equal("[[[{}]]]", enc(nest(4), { max_depth = 4 }))
    enc_err(nest(4), "value[1][1][1]: nesting deeper than 3", { max_depth = 3 })
    enc_err({ a = { b = {} } }, "value.a.b: nesting deeper than 2", { max_depth = 2 })
    assert.truthy(enc(nest(1000)))
    local s, err = encode(nest(1001))
    assert.is_nil(s)
    assert.are.equal("value" .. string.rep("[1]", 1000) .. ": nesting deeper than 1000", err)
  end)

  it("raises only for bad options", function()
    assert.has_error(function() encode(1, "x") end)
    assert.has_error(function() encode(1, { max_depth = 0 }) end)
    assert.has_error(function() encode(1, { max_depth = 2.5 }) end)
    assert.matches("max_depth must be an integer from 1 to " .. DEPTH_LIMIT,
      select(2, pcall(encode, 1, { max_depth = DEPTH_LIMIT + 1 })), 1, true)
    assert.has_error(function() decode("1", { max_depth = DEPTH_LIMIT + 1 }) end)
    assert.has_error(function() encode(1, { root = 5 }) end)
    assert.are.equal("1", enc(1, {}))
    assert.are.equal("1", enc(1, { root = "x", max_depth = DEPTH_LIMIT }))
  end)

  -- Neither direction recurses in C, so the deepest max_depth accepted works on any stack;
  -- the worst case per level is an object with a key order (order list, seen set, key, value).
  local deepest = [[
    local core = require("customerio.core")
    local limit = ...
    local arr, obj = {}, setmetatable({}, { __jsonorder = { "a" } })
    for _ = 2, limit do
      arr = { arr }
      obj = setmetatable({ a = obj, b = 1 }, { __jsonorder = { "b", "a" } })
    end
    local out = {}
    for _, v in ipairs({ arr, obj }) do
      local text = assert(core.json_encode(v, { max_depth = limit }))
      local back = assert(core.json_decode(text, { max_depth = limit, ordered = true }))
      assert(core.json_encode(back, { max_depth = limit }) == text)
      out[#out + 1] = #text
    end
    return table.concat(out, " ")
  ]]

  it("encodes and decodes at the deepest max_depth it accepts, in a coroutine", function()
    local co = coroutine.create(assert(loadstring or load)(deepest))
    local ok, sizes = coroutine.resume(co, DEPTH_LIMIT)
    assert(ok, sizes)
    assert.are.equal((2 * DEPTH_LIMIT) .. " " .. (12 * DEPTH_LIMIT - 10), sizes)
  end)

  it("encodes and decodes at the deepest max_depth it accepts on a 256 KB C stack", function()
    local interpreter = type(jit) == "table" and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
    local code = "print((assert(loadstring or load)(" .. string.format("%q", deepest) .. ")(" .. DEPTH_LIMIT .. ")))"
    local cmd = "ulimit -s 256 && LUA_PATH='" .. package.path .. "' LUA_CPATH='" .. package.cpath .. "' " ..
      interpreter .. " -e '" .. code:gsub("'", "'\\''") .. "' 2>&1"
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("*a")
    p:close()
    assert.are.equal((2 * DEPTH_LIMIT) .. " " .. (12 * DEPTH_LIMIT - 10) .. "\n", out)
  end)
end)

describe("core.json_encode max_bytes", function()
  it("stops as soon as the output passes max_bytes", function()
    assert.are.equal("[1,2,3]", enc({ 1, 2, 3 }, { max_bytes = 7 }))
    local s, err, reason = encode({ 1, 2, 3 }, { max_bytes = 6 })
    assert.is_nil(s)
    assert.are.equal("value: more than 6 bytes as JSON (max_bytes)", err)
    assert.are.equal("too_large", reason)
    enc_err({ a = string.rep("x", 100) }, "data: more than 50 bytes as JSON (max_bytes)", { root = "data", max_bytes = 50 })
    local ctl = string.rep("\1", 300) -- escapes: 6 bytes each, written exactly up to the limit
    local n = #enc(ctl)
    assert.are.equal(n, #enc(ctl, { max_bytes = n }))
    enc_err(ctl, "value: more than " .. (n - 1) .. " bytes as JSON (max_bytes)", { max_bytes = n - 1 })
    -- other errors keep their message, however long the path
    enc_err({ { { 0 / 0 } } }, "value[1][1][1]: cannot encode NaN", { max_bytes = 3 })
    assert.has_error(function() encode(1, { max_bytes = 0 }) end)
    assert.has_error(function() encode(1, { max_bytes = "1" }) end)
  end)

  it("stops a DAG of shared tables (2^27 leaves) at the limit", function()
    local t = { "x" }
    for _ = 1, 27 do t = { t, t } end
    enc_err(t, "data: more than 100000 bytes as JSON (max_bytes)", { root = "data", max_bytes = 100000 })
  end)
end)

describe("core.json_decode", function()
  it("decodes scalars", function()
    assert.are.equal(true, dec("true"))
    assert.are.equal(false, dec(" false "))
    assert.are.equal(null, dec("null"))
    assert.are.equal("hi", dec('"hi"'))
    assert.are.equal(42, dec("42"))
    assert.are.equal(-1.5, dec("-1.5"))
    assert.are.equal(1e21, dec("1e21"))
    assert.are.equal(1e-7, dec("1E-7"))
  end)

  it("turns integer literals into integers and the rest into floats", function()
    local v = dec("[1, 2.0, 3e2, -0, 0, -17, 0.5]")
    assert.are.same({ 1, 2, 300, 0, 0, -17, 0.5 }, v)
    if has_integers then
      local types = {}
      for i, x in ipairs(v) do types[i] = math.type(x) end
      assert.are.same({ "integer", "float", "float", "integer", "integer", "integer", "float" }, types)
    end
  end)

  it("decodes int64 extremes exactly (Lua 5.3+)", function()
    local v = dec("[9223372036854775807,-9223372036854775808,9007199254740993,1686041011364000000,9223372036854775808]")
    if has_integers then
      assert.are.equal(math.maxinteger, v[1])
      assert.are.equal(math.mininteger, v[2])
      assert.are.equal(9007199254740993, v[3])
      assert.are.equal(1686041011364000000, v[4])
      assert.are.equal("float", math.type(v[5])) -- beyond int64: a double
      assert.are.equal(2 ^ 63, v[5])
      assert.are.equal("[9223372036854775807,-9223372036854775808,9007199254740993]", enc({ v[1], v[2], v[3] }))
    else
      assert.are.equal(2 ^ 63, v[1]) -- LuaJIT: doubles
      assert.are.equal(2 ^ 53, v[3])
    end
  end)

  it("keeps numbers exact next to strings that look like numbers", function()
    if not has_integers then return end
    local v = dec('{"a":"12\\"3","b":[9007199254740993,{"c":"-5","d":-9007199254740993}],"e\\\\":7}')
    assert.are.equal(9007199254740993, v.b[1])
    assert.are.equal(-9007199254740993, v.b[2].d)
    assert.are.equal(7, v["e\\"])
    assert.are.equal('12"3', v.a)
  end)

  it("decodes objects and arrays", function()
    local v = dec('{"name":"x","items":[{"sku":"A","qty":2},{"sku":"B","qty":1}],"meta":{}}')
    assert.are.same({ name = "x", items = { { sku = "A", qty = 2 }, { sku = "B", qty = 1 } }, meta = {} }, v)
    assert.are.equal(core.array_mt, getmetatable(v.items))
    assert.is_nil(getmetatable(v.meta))
    assert.is_nil(getmetatable(v))
  end)

  it("keeps null as core.null in arrays and objects", function()
    local v = dec('{"a":null,"b":[1,null,3]}')
    assert.are.equal(null, v.a)
    assert.are.equal(null, v.b[2])
    assert.are.equal(3, #v.b)
    assert.are.equal("[1,null,3]", enc(v.b))
  end)

  it("round-trips [] and {}", function()
    assert.are.equal("[]", enc(dec("[]")))
    assert.are.equal("{}", enc(dec("{}")))
    assert.are.equal('{"a":[]}', enc(dec('{"a":[]}')))
    assert.are.equal('[[],{},[[]]]', enc(dec("[[],{},[[]]]")))
  end)

  it("lets the last duplicate key win", function()
    assert.are.same({ a = 2, b = 1 }, dec('{"a":1,"b":1,"a":2}'))
  end)

  it("records key order with ordered = true", function()
    local text = '{"zeta":1,"alpha":{"y":[],"x":null},"mid":[{"b":1,"a":2}],"alpha2":true}'
    local v = dec(text, { ordered = true })
    local mt = getmetatable(v)
    assert.are.equal("object", mt.__jsontype)
    assert.are.same({ "zeta", "alpha", "mid", "alpha2" }, mt.__jsonorder)
    assert.are.same({ "y", "x" }, getmetatable(v.alpha).__jsonorder)
    assert.are_not.equal(getmetatable(v), getmetatable(v.alpha))
    assert.are.equal(text, enc(v))
    v.extra = 1
    v.zeta = nil
    assert.are.equal('{"alpha":{"y":[],"x":null},"mid":[{"b":1,"a":2}],"alpha2":true,"extra":1}', enc(v))
    assert.are.equal("{}", enc(dec("{}", { ordered = true })))
    local d = dec('{"b":1,"a":2,"b":3}', { ordered = true })
    assert.are.same({ "b", "a" }, getmetatable(d).__jsonorder)
    assert.are.equal('{"b":3,"a":2}', enc(d))
  end)

  it("decodes escapes and unicode", function()
    assert.are.equal('a"b\\c/d\b\f\n\r\t', dec('"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"'))
    assert.are.equal("é東😀", dec('"\\u00e9\\u6771\\ud83d\\ude00"'))
    assert.are.equal("é東😀", dec('"é東😀"'))
    assert.are.equal("Zoë", dec('{"Zo\\u00EB":"Zoë"}')["Zoë"])
  end)

  it("decodes \\u0000 without cutting the string", function()
    assert.are.equal("a\0b", dec('"a\\u0000b"'))
    local v = dec('{"k\\u0000":"x\\u0000y","n":[12345678901234567,"\\u00e9\\"",true,null,"\\\\u0000"]}')
    assert.are.equal("x\0y", v["k\0"])
    assert.are.equal("é\"", v.n[2])
    assert.are.equal(true, v.n[3])
    assert.are.equal(null, v.n[4])
    assert.are.equal("\\u0000", v.n[5])
    if has_integers then assert.are.equal(12345678901234567, v.n[1]) end
    assert.are.equal('"x\\u0000y"', enc(v["k\0"]))
  end)

  it("round-trips a realistic payload", function()
    local payload = {
      name = "purchase", timestamp = 1700000000, customer_id = "cust_1",
      data = {
        total = 259.87, currency = "USD", url = "https://example.com/a?b=c/d",
        items = {
          { sku = "SKU-1", price = 19.99, qty = 2, tags = { "blue", "sale" } },
          { sku = "SKU-2", price = 0.5, qty = 1, tags = setmetatable({}, core.array_mt) },
        },
        notes = "line\nbreak\ttab \"quoted\" Zoë 東京", flag = false, none = null,
      },
    }
    local text = enc(payload)
    local back = dec(text)
    assert.are.same(payload, back)
    assert.are.same(back, dec(enc(back)))
    assert.are.equal(text, enc(dec(text, { ordered = true })))
  end)

  it("reports syntax errors with the byte offset", function()
    dec_err("", "invalid JSON at byte 1: unexpected end of input")
    dec_err("   ", "invalid JSON at byte 4: unexpected end of input")
    dec_err("[1,", "invalid JSON at byte 4: unexpected end of input")
    dec_err('{"a":', "invalid JSON at byte 6: unexpected end of input")
    dec_err('{"a":1', "invalid JSON at byte 7: unexpected end of input")
    dec_err('{"a" 1}', "invalid JSON at byte 6: unexpected '1'")
    dec_err("[1 2]", "invalid JSON at byte 4: unexpected '2'")
    dec_err("[1] x", "invalid JSON at byte 5: unexpected 'x'")
    dec_err("xyz", "invalid JSON at byte 1: unexpected 'x'")
    dec_err("tru", "invalid JSON at byte 1: unexpected 't'")
    dec_err("{'a':1}", "invalid JSON at byte 2: unexpected '''")
    dec_err('{"a":1, b:2}', "invalid JSON at byte 9: unexpected 'b'")
    dec_err('{"a":1,}', "invalid JSON at byte 8: unexpected '}'")
    dec_err('{ , }', "invalid JSON at byte 3: unexpected ','")
    dec_err("[1,2x]", "invalid JSON at byte 5: unexpected 'x'")
    dec_err('{"a":12x}', "invalid JSON at byte 8: unexpected 'x'")
    dec_err("[1,]", "invalid JSON at byte 4: unexpected ']'")
    dec_err('"abc', "invalid JSON at byte 1: unterminated string")
    dec_err('["ok", "abc\\"]', "invalid JSON at byte 8: unterminated string")
    dec_err('"a\\x"', "invalid JSON at byte 3: invalid escape in string")
    dec_err('"\\ud800"', "invalid JSON at byte 2: lone surrogate in string")
    dec_err('"\\udc00x"', "invalid JSON at byte 2: lone surrogate in string")
  end)

  it("is a strict RFC 8259 reader: says what is wrong and where", function()
    -- numbers
    dec_err("01", "invalid JSON at byte 1: leading zero in number")
    dec_err("[-012]", "invalid JSON at byte 3: leading zero in number")
    dec_err("[1.]", "invalid JSON at byte 4: unexpected ']'")
    dec_err("1.", "invalid JSON at byte 3: unexpected end of input")
    dec_err("-.5", "invalid JSON at byte 2: unexpected '.'")
    dec_err(".5", "invalid JSON at byte 1: unexpected '.'")
    dec_err("+1", "invalid JSON at byte 1: unexpected '+'")
    dec_err("1e", "invalid JSON at byte 3: unexpected end of input")
    dec_err("[1e+]", "invalid JSON at byte 5: unexpected ']'")
    dec_err("0x10", "invalid JSON at byte 2: unexpected 'x'")
    dec_err("[NaN]", "invalid JSON at byte 2: unexpected 'N'")
    dec_err("-Infinity", "invalid JSON at byte 2: unexpected 'I'")
    -- \u escapes and surrogates
    dec_err('"\\u12G4"', "invalid JSON at byte 2: invalid \\u escape in string")
    dec_err('"\\u12"', "invalid JSON at byte 1: unterminated string")
    dec_err('["\\ud83d\\u0041"]', "invalid JSON at byte 3: lone surrogate in string")
    dec_err('"ab\\ude00\\ud83d"', "invalid JSON at byte 4: lone surrogate in string")
    dec_err('"\\ud83d\\n"', "invalid JSON at byte 2: lone surrogate in string")
    dec_err('"\\U00e9"', "invalid JSON at byte 2: invalid escape in string")
    dec_err('"\\\'"', "invalid JSON at byte 2: invalid escape in string")
    -- control characters inside strings, even tab/CR/LF (RFC 8259 section 7)
    dec_err('"a\tb"', "invalid JSON at byte 3: control character")
    dec_err('{"k\n":1}', "invalid JSON at byte 4: control character")
    dec_err('"x\\n\r"', "invalid JSON at byte 5: control character")
    -- trailing garbage and other leftovers
    dec_err("[1]]", "invalid JSON at byte 4: unexpected ']'")
    dec_err('{"a":1}{}', "invalid JSON at byte 8: unexpected '{'")
    dec_err("1 2", "invalid JSON at byte 3: unexpected '2'")
    dec_err("\239\187\191[]", "invalid JSON at byte 1: unexpected byte 0xef") -- no BOM
    dec_err("[1]\255", "invalid UTF-8 at byte 4")
    dec_err("nul", "invalid JSON at byte 1: unexpected 'n'")
    dec_err("[truex]", "invalid JSON at byte 6: unexpected 'x'")
    dec_err("[\f]", "invalid JSON at byte 2: control character") -- form feed is not white space
    dec_err('{"a"}', "invalid JSON at byte 5: unexpected '}'")
    dec_err('{"a":1 "b":2}', "invalid JSON at byte 8: unexpected '\"'")
    dec_err('{1:2}', "invalid JSON at byte 2: unexpected '1'")
    -- what is valid stays valid
    assert.are.same({ 0, -0.5, 1e-5, 12.5e3, 1, 0 }, dec("[0,-0.5,1E-5,12.5e+3,1.0e0,-0e-0]"))
    assert.are.equal("\127", dec('"\127"'))
    assert.are.same({ a = {} }, dec(' \t\r\n{ "a" : [ ] } \n'))
  end)

  it("reads numbers exactly, long ones included", function()
    local cases = {
      "0.1", "0.30000000000000004", "1.7976931348623157e308", "5e-324", "2.2250738585072014e-308",
      "123456789012345678901234567890", "0.000000000000000000000000000001", "9007199254740993.0",
      "1e22", "1e23", "4.35", "3.141592653589793238462643383279", "1E400", "-1e-400", "100000000000000000000",
      "18446744073709551615", "18446744073709551616", "-9223372036854775809",
    }
    for _, s in ipairs(cases) do
      assert.are.equal(tonumber(s), dec(s), s)
      assert.are.equal(tonumber(s), dec("[" .. s .. "]")[1], s)
    end
  end)

  it("rejects control characters and invalid UTF-8 in the text", function()
    dec_err('"a\1b"', "invalid JSON at byte 3: control character")
    dec_err("[1]\0", "invalid JSON at byte 4: control character")
    dec_err('"a\0b"', "invalid JSON at byte 3: control character")
    dec_err('"\255"', "invalid UTF-8 at byte 2")
    dec_err('["ok","\192\175"]', "invalid UTF-8 at byte 8")
    dec_err('"\237\160\128"', "invalid UTF-8 at byte 2")
    dec_err('"\244\144\128\128"', "invalid UTF-8 at byte 2")
    dec_err('{"k\226\130":1}', "invalid UTF-8 at byte 4")
  end)

  it("limits nesting depth", function()
    assert.truthy(dec(string.rep("[", 1000) .. string.rep("]", 1000)))
    dec_err(string.rep("[", 1001) .. string.rep("]", 1001), "nesting deeper than 1000 at byte 1001")
    dec_err(string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001), "nesting deeper than 1000 at byte 5001")
    assert.truthy(dec("[[[1]]]", { max_depth = 3 }))
    dec_err("[[[[1]]]]", "nesting deeper than 3 at byte 4", { max_depth = 3 })
    dec_err('{"a":{"b":[{}]}}', "nesting deeper than 2 at byte 11", { max_depth = 2 })
    dec_err('["[[[", [[1]]]', "nesting deeper than 2 at byte 10", { max_depth = 2 })
  end)

  it("limits the number of values (max_values, default 1000000)", function()
    assert.are.same({ 1, 2, 3 }, dec("[1,2,3]", { max_values = 4 }))
    local v, err, reason = decode("[1,2,3]", { max_values = 3 })
    assert.is_nil(v)
    assert.are.equal("more than 3 values (max_values) at byte 6", err)
    assert.are.equal("too_large", reason)
    dec_err('{"a":{"b":1}}', "more than 2 values (max_values) at byte 11", { max_values = 2 })
    local million = "[" .. string.rep("0,", 999998) .. "0]" -- the array and 999999 zeros
    assert.are.equal(999999, #dec(million))
    dec_err("[0," .. million:sub(2), "more than 1000000 values (max_values) at byte 2000000")
    assert.are.equal(1000000, #dec("[0," .. million:sub(2), { max_values = 1000001 }))
    assert.are.equal("invalid", select(3, decode("[1,]")))
    assert.has_error(function() decode("1", { max_values = 0 }) end)
    assert.has_error(function() decode("1", { max_values = 1.5 }) end)
    assert.has_error(function() decode("1", { max_values = "9" }) end)
  end)

  it("stops once deadline_ms has passed (the clock is read every 4096 values)", function()
    local text = "[" .. string.rep("0,", 10000) .. "0]"
    local v, err, reason = decode(text, { deadline_ms = core.monotonic_ms() - 1 })
    assert.is_nil(v)
    assert.are.equal("deadline_ms passed while decoding, at byte 8190", err) -- the 4096th value
    assert.are.equal("timeout", reason)
    assert.are.equal(10001, #dec(text, { deadline_ms = core.monotonic_ms() + 600000 }))
    assert.are.same({ 1, 2 }, dec("[1,2]", { deadline_ms = 0 })) -- too small to look at the clock
    assert.has_error(function() decode("1", { deadline_ms = "soon" }) end)
  end)

  it("raises only for bad arguments", function()
    assert.has_error(function() decode(5) end)
    assert.has_error(function() decode(nil) end)
    assert.has_error(function() decode("1", "x") end)
    assert.has_error(function() decode("1", { max_depth = -1 }) end)
    assert.are.equal(1, dec("1", {}))
  end)

  it("survives many calls (the cJSON tree and buffers are freed)", function()
    local text = enc({ a = { 1, 2, { b = "c" } }, s = string.rep("x", 5000) })
    for _ = 1, 2000 do
      assert.truthy(decode(text))
      assert.is_nil(decode(text .. "]"))
      assert.truthy(encode({ text, 1.5, { d = true } }))
      assert.is_nil(encode({ text, 0 / 0 }))
    end
  end)
end)

describe("customerio.json.decode", function()
  local json = require("customerio.json")
  it("gives error objects whose kind says what went wrong", function()
    local v, err = json.decode("[1,2]", { max_values = 2 })
    assert.is_nil(v)
    assert.are.equal("too_large", err.kind)
    assert.are.equal("more than 2 values (max_values) at byte 4", err.message)
    v, err = json.decode("[01]")
    assert.is_nil(v)
    assert.are.equal("json", err.kind)
    assert.are.equal("invalid JSON at byte 2: leading zero in number", err.message)
    v, err = json.decode("[" .. string.rep("1,", 5000) .. "1]", { deadline_ms = core.monotonic_ms() - 1 })
    assert.is_nil(v)
    assert.are.equal("timeout", err.kind)
  end)
end)
