-- (b) GET /v1/orders/{id}, each request with the bearer token of the order's owner, spread
-- uniformly over the seeded orders (and so over the customers).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
expected_status = 200

local tokens, ids = {}, {}
for i, line in ipairs(lines("orders.txt")) do
  local token, id = line:match("^(%S+) (%S+)$")
  tokens[i] = "Bearer " .. token
  ids[i] = "/v1/orders/" .. id
end

function request()
  local i = math.random(#ids)
  return wrk.format("GET", ids[i], { ["Authorization"] = tokens[i] })
end
