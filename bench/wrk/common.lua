-- Shared by read.lua, write.lua and mixed.lua.
-- Script arguments (after "--" on the wrk command line):
--   collection  number-of-keys  value-bytes  [minimal]
-- With "minimal", every PUT sends "Prefer: return=minimal" (RFC 7240).
-- Keys are k00000 .. k<N-1>; a PUT body is {"id":"<key>","payload":"xxx..."} of exactly
-- value-bytes bytes (the same shape as bench/payload.py), so every PUT replaces a key.
-- done() prints one line "WRK_RESULT {json}" for the harness to parse.

local common = {}

local collection = "bench"
local nkeys = 10000
local value_bytes = 1024
local read_percent = 100
local put_headers = { ["Content-Type"] = "application/json" }
local padding = ""

function common.setup(thread)
   common.thread_count = (common.thread_count or 0) + 1
   thread:set("thread_id", common.thread_count)
end

function common.init(args, percent)
   collection = args[1] or collection
   nkeys = tonumber(args[2] or nkeys)
   value_bytes = tonumber(args[3] or value_bytes)
   read_percent = percent
   if args[4] == "minimal" then
      put_headers["Prefer"] = "return=minimal"
   end
   local envelope = string.len('{"id":"k00000","payload":""}')
   padding = string.rep("x", math.max(value_bytes - envelope, 0))
   math.randomseed(os.time() * 1000 + (thread_id or 0))
end

local function key()
   return string.format("k%05d", math.random(0, nkeys - 1))
end

function common.request()
   local k = key()
   local path = "/collections/" .. collection .. "/items/" .. k
   if read_percent >= 100 or (read_percent > 0 and math.random(1, 100) <= read_percent) then
      return wrk.format("GET", path)
   end
   return wrk.format("PUT", path, put_headers, '{"id":"' .. k .. '","payload":"' .. padding .. '"}')
end

function common.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max))
end

return common
