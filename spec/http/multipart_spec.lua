-- customerio.multipart (customerio.http.multipart after the layout move): multipart/form-data
-- bodies as fetch builds them from a FormData, and their decoding (used by the sandbox).
local multipart = require("customerio.http.multipart")

describe("multipart.encode", function()
  it("writes each part with its disposition and, for files, a content type", function()
    local body, ctype = multipart.encode({
      { name = "file", filename = "logo.PNG", data = "\137PNG\r\n--x" },
      { name = "name", data = "Logo" },
    }, "BOUND")
    assert.are.equal("multipart/form-data; boundary=BOUND", ctype)
    assert.are.equal(table.concat({
      "--BOUND\r\n",
      'Content-Disposition: form-data; name="file"; filename="logo.PNG"\r\n',
      "Content-Type: image/png\r\n\r\n",
      "\137PNG\r\n--x\r\n",
      "--BOUND\r\n",
      'Content-Disposition: form-data; name="name"\r\n\r\n',
      "Logo\r\n",
      "--BOUND--\r\n",
    }), body)
  end)

  it("escapes quotes and line breaks in names as browsers do", function()
    local body = multipart.encode({ { name = 'a"b\r\nc', filename = 'x"\n.pdf', data = "" } }, "B")
    assert.matches('name="a%22b%0D%0Ac"; filename="x%22%0A.pdf"', body, 1, true)
    assert.matches("Content-Type: application/pdf", body, 1, true)
  end)

  it("uses the given content type, or octet-stream for unknown extensions", function()
    assert.matches("Content-Type: text/csv\r\n",
      multipart.encode({ { name = "f", filename = "a.csv", content_type = "text/csv", data = "" } }, "B"), 1, true)
    assert.are.equal("application/octet-stream", multipart.type_of("archive.tar.zst"))
    assert.are.equal("application/octet-stream", multipart.type_of("noext"))
    assert.are.equal("application/octet-stream", multipart.type_of("dir.png/file"))
    assert.are.equal("image/jpeg", multipart.type_of("a.JPEG"))
  end)

  it("picks a random boundary that does not occur in the data", function()
    local _, ctype1 = multipart.encode({ { name = "a", data = "x" } })
    local _, ctype2 = multipart.encode({ { name = "a", data = "x" } })
    local b1 = ctype1:match("boundary=(.+)$")
    assert.matches("^%-%-%-%-customerio%x+$", b1)
    assert.are_not.equal(b1, ctype2:match("boundary=(.+)$"))
  end)

  it("raises on a part without a name or with non-string data", function()
    assert.has_error(function() multipart.encode({ { data = "x" } }, "B") end, "multipart part 1 needs a name")
    assert.has_error(function() multipart.encode({ { name = "n", data = 42 } }, "B") end,
      "multipart part n must be a string")
  end)
end)

describe("multipart.decode", function()
  it("reads back what encode wrote, binary data included", function()
    local data = "line1\r\n--not-the-boundary\r\n\0\255"
    local body, ctype = multipart.encode({
      { name = "file", filename = "r.pdf", data = data },
      { name = "empty", data = "" },
    })
    local parts = assert(multipart.decode(body, ctype))
    assert.are.equal(2, #parts)
    assert.are.same({ name = "file", filename = "r.pdf", content_type = "application/pdf", data = data }, parts[1])
    assert.are.same({ name = "empty", data = "" }, parts[2])
  end)

  it("accepts a quoted boundary parameter", function()
    local body = multipart.encode({ { name = "a", data = "1" } }, "q")
    assert.are.equal("1", multipart.decode(body, 'multipart/form-data; boundary="q"')[1].data)
  end)

  it("says what is wrong with a malformed body", function()
    local function fails(body, ctype)
      local parts, err = multipart.decode(body, ctype)
      assert.is_nil(parts)
      return err
    end
    assert.are.equal("no boundary in content type", fails("", "multipart/form-data"))
    assert.are.equal("no boundary in content type", fails("", nil))
    assert.are.equal("boundary not found", fails("nothing here", "multipart/form-data; boundary=B"))
    assert.are.equal("malformed boundary line", fails("--Bxx", "multipart/form-data; boundary=B"))
    assert.are.equal("part without headers", fails("--B\r\nContent-Disposition: x", "multipart/form-data; boundary=B"))
    assert.are.equal("unterminated part",
      fails('--B\r\nContent-Disposition: form-data; name="a"\r\n\r\ndata', "multipart/form-data; boundary=B"))
  end)
end)
