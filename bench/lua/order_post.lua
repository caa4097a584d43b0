-- (d) POST /v1/orders as a random seeded customer: 1–3 distinct random products, quantity
-- 1–3 each, and an Idempotency-Key unique to this request (run, thread, counter). Anything
-- but 201 counts as an error (409 insufficient_stock included: the seeder stocks enough).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
expected_status = 201

local tokens = lines("tokens.txt")
local products = lines("products.txt")
local run = os.getenv("BENCH_RUN_ID") or tostring(os.time())
local sent = 0

function request()
  sent = sent + 1
  local count = math.random(3)
  local chosen, items = {}, {}
  while #items < count do
    local id = products[math.random(#products)]
    if not chosen[id] then
      chosen[id] = true
      items[#items + 1] = string.format('{"product_id":"%s","quantity":%d}', id, math.random(3))
    end
  end
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
    ["Idempotency-Key"] = string.format("bench-%s-%d-%d", run, tid, sent),
  }
  return wrk.format("POST", "/v1/orders", headers, '{"items":[' .. table.concat(items, ",") .. ']}')
end
