-- The rockspec lists every module of the tree (tools/gen-rockspec.sh keeps it in sync).
describe("rockspec/customerio-scm-1.rockspec", function()
  it("is what tools/gen-rockspec.sh generates from the current tree", function()
    local p = assert(io.popen("sh tools/gen-rockspec.sh"))
    local want = p:read("*a")
    p:close()
    local f = assert(io.open("rockspec/customerio-scm-1.rockspec", "rb"))
    local have = f:read("*a")
    f:close()
    assert.are.equal(want, have, "run: sh tools/gen-rockspec.sh > rockspec/customerio-scm-1.rockspec")
  end)

  it("is a valid rockspec naming the C core and the public module", function()
    local env = {}
    local chunk = assert(loadfile("rockspec/customerio-scm-1.rockspec", "t", env) or
      loadfile("rockspec/customerio-scm-1.rockspec"))
    if setfenv then setfenv(chunk, env) end
    chunk()
    assert.are.equal("customerio", env.package)
    assert.are.equal("builtin", env.build.type)
    assert.is_table(env.build.modules["customerio.core"])
    assert.are.equal("lua/customerio/init.lua", env.build.modules["customerio"])
    assert.are.equal("bin/customerio", env.build.install.bin.customerio)
  end)
end)
