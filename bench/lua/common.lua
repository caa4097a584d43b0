-- Shared by every bench script (loaded with dofile by each): data files, per-thread random
-- seeds, the expected-status check and one machine-readable summary line.
--
-- wrk runs this file once in its main Lua state (setup, done) and once per thread (init,
-- request, response). Counters live in the thread states; done() collects them.

local data_dir = assert(os.getenv("BENCH_DATA"), "BENCH_DATA is not set")

-- Non-empty lines of a file the seeder wrote.
function lines(name)
  local out = {}
  for line in io.lines(data_dir .. "/" .. name) do
    if line ~= "" then out[#out + 1] = line end
  end
  assert(#out > 0, "no data in " .. data_dir .. "/" .. name)
  return out
end

-- The status every response must have; each script sets it.
expected_status = 200

-- Thread-local counters (globals of the thread's Lua state, read back in done()).
unexpected = 0
bad_statuses = {}
tid = 0

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  -- Different sequences per thread and per run.
  math.randomseed(os.time() * 1000 + tid * 7919)
  for _ = 1, 10 do math.random() end
end

function response(status, headers, body)
  if status ~= expected_status then
    unexpected = unexpected + 1
    local key = tostring(status)
    bad_statuses[key] = (bad_statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local count, by_status = 0, {}
  for _, thread in ipairs(threads) do
    count = count + (thread:get("unexpected") or 0)
    for status, n in pairs(thread:get("bad_statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local statuses = {}
  for status, n in pairs(by_status) do statuses[#statuses + 1] = string.format('"%s":%d', status, n) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"non_2xx_3xx":%d,"unexpected_status":%d,"bad_statuses":{%s},' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    count, table.concat(statuses, ","), latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
