-- wrk script: every request carries a token picked at random from a file,
-- and the run ends with one line of figures for the bench program.
-- usage: wrk ... -s random_token.lua URL -- TOKEN_FILE [HEADER] [PREFIX]
--   tokenledger: -- tokens.txt Authorization "Bearer "
--
-- Every line of TOKEN_FILE must have the same length (tokenledger's secrets
-- do). The file is read whole, once per thread, and each request is cut
-- from it: wrk starts each thread as soon as its init returns, before the
-- next thread's init and before its clock starts, so an init that formats
-- a million requests (as ../shared/peers/drf/wrk_random_token.lua does)
-- lets the first thread run for seconds unmeasured and inflates req/s.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local data, width, count, head, tail

function init(args)
  local file = args[1] or error("token file argument required")
  local header = args[2] or "Authorization"
  local prefix = args[3] or "Bearer "
  local f = assert(io.open(file, "rb"))
  data = f:read("*a")
  f:close()
  width = data:find("\n", 1, true) or error("no complete line in " .. file)
  if #data % width ~= 0 then error(file .. ": every line must have the same length") end
  count = #data / width
  local req = wrk.format("GET", wrk.path, { [header] = prefix .. "\0" })
  local at = req:find("\0", 1, true)
  head, tail = req:sub(1, at - 1), req:sub(at + 1)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
  local off = (math.random(count) - 1) * width
  return head .. data:sub(off + 1, off + width - 1) .. tail
end

-- Latencies in microseconds; status counts the answers that were not 2xx
-- or 3xx.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
