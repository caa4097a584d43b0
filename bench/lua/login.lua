-- (e) POST /v1/auth/tokens with a random seeded customer's credentials (argon2 verify,
-- a refresh-token family insert, a JWT).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
expected_status = 200

local bodies = lines("logins.txt")
local headers = { ["Content-Type"] = "application/json" }

function request()
  return wrk.format("POST", "/v1/auth/tokens", headers, bodies[math.random(#bodies)])
end
