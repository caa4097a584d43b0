-- (g) POST /v1/products as the admin: a product with a SKU unique to this request (run,
-- thread, counter), no Idempotency-Key, no initial stock (so one product row and its
-- product.created event, in one transaction). Anything but 201 counts as an error
-- (409 sku_taken included). The price is in EUR, the seeder's and the server's default currency.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
expected_status = 201

local token = "Bearer " .. lines("admin_token.txt")[1]
-- SKUs allow letters, digits and '-' only; the run id has '_' and lower case.
local run = (os.getenv("BENCH_RUN_ID") or tostring(os.time())):gsub("[^%w%-]", "-"):upper()
local sent = 0

function request()
  sent = sent + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = token,
  }
  local body = string.format(
    '{"sku":"BP-%s-%d-%d","name":"Bench product %d-%d","description":"Created by the benchmark.",' ..
    '"unit_price":{"amount":%d,"currency":"EUR"}}',
    run, tid, sent, tid, sent, 199 + math.random(99800))
  return wrk.format("POST", "/v1/products", headers, body)
end
