--- wrk script: the identify request (PUT /api/v1/customers/ID with the bench body), so that
-- `wrk -c1` measures the server plus loopback limit for the very request the clients send.
-- bench/run.sh passes the body file in CIO_BENCH_BODY and the Authorization in CIO_BENCH_AUTH.
-- luacheck: globals wrk
local f = assert(io.open(assert(os.getenv("CIO_BENCH_BODY"), "CIO_BENCH_BODY not set"), "rb"))
wrk.method = "PUT"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("CIO_BENCH_AUTH") or "Basic c2l0ZS1pZDphcGkta2V5"
wrk.headers["User-Agent"] = "wrk"
