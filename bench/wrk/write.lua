-- wrk workload "write": 100% PUT (replace) of random keys.
-- Usage: wrk -c64 -d10s --latency -s write.lua http://127.0.0.1:8080 -- bench 10000 1024
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")

setup = common.setup
init = function(args) common.init(args, 0) end
request = common.request
done = common.done
