-- luacheck configuration: library code must run on Lua 5.1/LuaJIT and 5.4.
std = "max"
max_line_length = 130
codes = true
exclude_files = { "bench/node_modules", "bench/node", "bench/**/node_modules", "build", "lua_modules" }

files["spec"] = { std = "+busted" }
files["spec/support/ngx_app"] = { std = "+ngx_lua" }
files["lua/customerio/transport/ngx"] = { globals = { "ngx" } }
files["lua/customerio/queue/ngx.lua"] = { globals = { "ngx" } }
files["lua/customerio/ratelimit/shdict.lua"] = { globals = { "ngx" } }
files["examples/openresty"] = { std = "+ngx_lua" }
files["spec/support/handler.lua"] = { std = "+ngx_lua" }
files["bench"] = { std = "+ngx_lua" }
files["lua/customerio/sandbox/server.lua"] = { std = "+ngx_lua" }
