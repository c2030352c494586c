-- Regenerates the seed corpus in fuzz/corpus/<target>/ from the spec fixtures and a few hand
-- written edge cases:  lua5.4 fuzz/make_corpus.lua   (from the repository root; needs the C
-- core built for 5.4: make). Deterministic: the same files every time.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local core = require("customerio.core")

local function write(target, name, data)
  local f = assert(io.open("fuzz/corpus/" .. target .. "/" .. name, "wb"))
  f:write(data)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

for _, t in ipairs({ "json_decode", "json_encode", "uri_encode", "error_body", "liquid" }) do
  os.execute("mkdir -p fuzz/corpus/" .. t .. " && rm -f fuzz/corpus/" .. t .. "/seed-*")
end

-- json_decode: the Node wire fixtures, Customer.io responses, edge cases.
local n = 0
local function jd(s) n = n + 1; write("json_decode", string.format("seed-%03d", n), s) end
for line in io.lines("spec/fixtures/node-wire.jsonl") do
  if n < 40 then jd(line) end
end
for _, s in ipairs({
  '{}', '[]', 'null', 'true', '0', '-0', '-0.0', '1e400', '-1e400', '1.5e-320', '9223372036854775807',
  '9223372036854775808', '-9223372036854775808', '-9223372036854775809', '18446744073709551616',
  '123456789012345678901234567890', '0.1', '1E+2', '"\\u0000"', '"a\\u0000b"', '{"a\\u0000":1}',
  '"\\ud83d\\ude00"', '"\\ud800"', '"\\udc00\\ud800"', '"\\u00e9"', '"caf\195\169"', '"\237\160\128"',
  '"\255"', '\239\187\191{}', '{"a":1,"a":2}', '{"a":{"b":[1,2,{"c":null}]}}', '[1,[2,[3,[4]]]]',
  string.rep("[", 999) .. string.rep("]", 999), string.rep("[", 1001) .. string.rep("]", 1001),
  string.rep('{"a":', 50) .. "1" .. string.rep("}", 50), '{"a":1', '[1,2', '"abc', '{"a" 1}',
  "{'a':1}", '[1,]', '{,}', '01', '1.', '-.5', 'nul', 'tru', '"\\x"', '"\\u12"', '" \t\r\n"',
  '"\1"', '[1]x', '  {"a":[]}  ', '{"meta":{"error":"bad"}}', '{"errors":[{"detail":"d"}]}',
  '{"delivery_id":"d1","queued_at":1700000000}', '[' .. string.rep('1,', 200) .. '1]',
}) do jd(s) end

-- json_encode: byte programs (see the harness); a deterministic PRNG for variety.
local seed = 12345
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed
end
for i = 1, 40 do
  local len = 8 + rnd() % 120
  local b = {}
  for j = 1, len do b[j] = string.char(rnd() % 256) end
  write("json_encode", string.format("seed-%03d", i), table.concat(b))
end
for i, s in ipairs({ "\0\10\1\2\3", "\0\12\3\7abc\1\9\2xy\3", "\0\22\40", "\1\6\0", "\0\18\4\1a\2\0\3b\1\1", "\0\20",
  "\0\16\0\3\1\2\3", "\0\4\255\255\255\255\255\255\255\127", "\0\5\0\0\0\0\0\0\240\127", "\0\24\3",
  "\0\7\5\255\254\0\1\2", "\0\11\4\6\1\12\2\20\0" }) do
  write("json_encode", string.format("seed-h%02d", i), s)
end

-- uri_encode: identifiers.
for i, s in ipairs({ "42", "a/b c@d", "..", ".", "../../admin", "%2E%2E", "ada@example.com", "\0\r\n",
  "a\0b\0..\0.", "caf\195\169", "\255\254", "x?y#z&w=v", "~!*'()", string.rep("/", 64), " ", "+", "\127" }) do
  write("uri_encode", string.format("seed-%03d", i), s)
end

-- error_body: status byte, 16 bytes of secret, body.
local bodies = {
  '{"meta":{"error":"transactional_message_id not found"}}', '{"meta":{"errors":["a too long","b missing"]}}',
  '{"errors":[{"detail":"The broadcast_id does not exist.","status":"404"}]}',
  '{"errors":[{"reason":"r","field":"f","message":"bad field"}]}', '{"error":"nope"}', '{"message":"m"}',
  "Forbidden by proxy", "<html><body>502 Bad Gateway</body></html>", "", "   ", string.rep("x", 600),
  '{"meta":{"error":""}}', '{"meta":[]}', '{"errors":"str"}', '{"errors":[1,true,null,{}]}', "[1,2]", "{",
  '{"meta":{"error":"bad key sk_live_SECRETKEY1"}}', "sk_live_SECRETKEY1 sk_live_SECRETKEY1",
}
for i, b in ipairs(bodies) do
  write("error_body", string.format("seed-%03d", i), string.char(i % 16) .. "sk_live_SECRETKEY1" .. b)
end

-- liquid: the golden suite's templates (first byte: options), plus Customer.io-style ones.
local golden = core.json_decode(read("spec/fixtures/golden_liquid.json"))
local seen, count = {}, 0
for _, t in ipairs(golden.tests) do
  local src = t.template
  if type(src) == "string" and #src <= 1024 and not seen[src] and count < 400 then
    seen[src] = true
    count = count + 1
    write("liquid", string.format("seed-%03d", count), string.char(count % 4) .. src)
  end
end
for i, s in ipairs({
  "Hi {{ customer.first_name | default: 'there' }}!",
  "{% for item in trigger.items %}{{ item.name }} x{{ item.qty }} = {{ item.price | times: item.qty }}{% endfor %}",
  "{{ trigger.when | date: '%Y-%m-%d %H:%M' }}", "{% if customer.score > 10 %}big{% elsif customer.flag %}f{% else %}s{% endif %}",
  "{% capture x %}{{ customer.email | upcase }}{% endcapture %}{{ x | size }}",
  "{{ event.data.total | round: 1 }} {{ trigger.url | url_encode }} {{ customer.tags | join: ',' }}",
  "{% unless customer.empty %}{{ customer.missing.deep }}{% endunless %}", "{{", "{%", "{% if %}", "{{ a | }}",
}) do
  write("liquid", string.format("seed-h%02d", i), string.char(i % 4) .. s)
end
print("corpus written")
