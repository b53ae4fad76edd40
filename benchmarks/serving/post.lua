-- POST JSON bodies to /invocations, rotating through a file of them; used by run.py.
--
--   wrk -t2 -c16 -d30s -s post.lua http://127.0.0.1:PORT -- BODIES.jsonl
--
-- BODIES.jsonl holds one request body per line. Each thread starts at a different line so the
-- threads do not send the same rows in lockstep. Every response outside 200-299 is counted.
-- At the end one line is printed: "WRK_JSON " followed by a JSON object with the request
-- count, duration, latency percentiles (microseconds), socket errors and non-2xx responses.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  assert(path, "pass the bodies file after --")
  local headers = { ["Content-Type"] = "application/json" }
  requests = {}
  for line in io.lines(path) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", "/invocations", headers, line)
    end
  end
  assert(#requests > 0, "no request bodies in " .. path)
  index = (id * 97) % #requests
  non2xx = 0
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non2xx = 0
  for _, thread in ipairs(threads) do
    non2xx = non2xx + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, non2xx
  ))
end
