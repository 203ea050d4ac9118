-- wrk script for bench/envoy_pack.py and bench/soak.py: POSTs the requests listed in the file
-- named by $BENCH_REQUESTS (one per line: path, tab, x-fixture or "-", tab, body file), in
-- turn, and prints one JSON line of results at the end.
local requests = {}
local next_index = 1

function init(args)
  local list = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  for line in list:lines() do
    local path, fixture, file = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
    local f = assert(io.open(file, "rb"))
    local body = f:read("*a")
    f:close()
    local headers = { ["content-type"] = "application/json" }
    if fixture ~= "-" then headers["x-fixture"] = fixture end
    requests[#requests + 1] = wrk.format("POST", path, headers, body)
  end
  list:close()
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
