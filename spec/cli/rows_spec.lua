-- customerio.cli.rows: CSV and NDJSON rows for `customerio import`, with the line each starts on.
local rows = require("customerio.cli.rows")

describe("customerio.cli.rows", function()
  describe("csv", function()
    it("reads quoted fields, doubled quotes, line breaks inside quotes and CRLF, keeping line numbers", function()
      local text = 'id,name,note\r\n1,"Ada, L.","said ""hi"""\r\n2,Bob,"two\nlines"\r\n3,Cy,\r\n'
      local got = assert(rows.csv(text, "id", {}))
      assert.are.equal(3, #got)
      assert.are.same({ line = 2, id = "1", attributes = { name = "Ada, L.", note = 'said "hi"' } }, got[1])
      assert.are.same({ line = 3, id = "2", attributes = { name = "Bob", note = "two\nlines" } }, got[2])
      -- Empty cells are left out: an empty value would remove the attribute at Customer.io.
      assert.are.same({ line = 5, id = "3", attributes = { name = "Cy" } }, got[3])
    end)

    it("converts the typed columns and rejects what does not convert", function()
      local types = assert(rows.parse_types("n=number, i=integer,b=boolean,j=json"))
      local got = assert(rows.csv('id,n,i,b,j\na,1.5,3,yes,"[1,2]"\nb,x,,,\nc,,2.5,,\nd,,,maybe,\ne,,,,{\n', "id", types))
      assert.are.same({ n = 1.5, i = 3, b = true, j = { 1, 2 } }, got[1].attributes)
      if math.type then assert.are.equal("integer", math.type(got[1].attributes.i)) end
      assert.are.equal("n: 'x' is not a number", got[2].error)
      assert.are.equal("i: '2.5' is not an integer", got[3].error)
      assert.are.equal("b: 'maybe' is not a boolean (true/false, 1/0, yes/no)", got[4].error)
      assert.matches("^j: '{' is not JSON", got[5].error)
    end)

    it("rejects rows without an id, with the wrong number of fields, or an unterminated quote", function()
      local got = assert(rows.csv('email,id\nx@example.com,\na,b,c\nok@example.com,7\n"open,1\n', "id", {}))
      assert.are.equal("no id (the --id-column)", got[1].error)
      assert.are.equal("3 fields, the header has 2", got[2].error)
      assert.are.same({ line = 4, id = "7", attributes = { email = "ok@example.com" } }, got[3])
      assert.are.same({ line = 5, error = "unterminated quoted field" }, got[4])
    end)

    it("refuses a file without the id column or without a header", function()
      assert.are.same({ nil, "no column named 'user_id' in the header (see --id-column)" },
        { rows.csv("id,email\n1,a\n", "user_id", {}) })
      assert.are.same({ nil, "no header line" }, { rows.csv("", "id", {}) })
    end)
  end)

  describe("ndjson", function()
    it("keeps JSON types, skips blank lines and numbers the lines of the file", function()
      local got = rows.ndjson('{"id":1,"a":[1]}\n\n{"id":"x","b":false}\n', "id", {})
      assert.are.equal(2, #got)
      assert.are.same({ line = 1, id = "1", attributes = { a = { 1 } } }, got[1])
      assert.are.same({ line = 3, id = "x", attributes = { b = false } }, got[2])
    end)
  end)

  describe("parse_types", function()
    it("names the problem", function()
      assert.are.same({ nil, "--types: expected name=type, got 'revenue'" }, { rows.parse_types("revenue") })
      assert.are.same({ nil, "--types: unknown type 'money' for revenue (string, number, integer, boolean, json)" },
        { rows.parse_types("revenue=money") })
    end)
  end)
end)
