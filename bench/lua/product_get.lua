-- (a) anonymous GET /v1/products/{id}, spread uniformly over the seeded products.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
expected_status = 200

local ids = lines("products.txt")

function request()
  return wrk.format("GET", "/v1/products/" .. ids[math.random(#ids)])
end
