-- (c) anonymous GET /v1/products?limit=20: the catalogue's first page.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
expected_status = 200

function request()
  return wrk.format("GET", "/v1/products?limit=20")
end
