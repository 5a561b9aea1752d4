-- wrk workload "mixed": 80% GET / 20% PUT of random keys.
-- Usage: wrk -c64 -d10s --latency -s mixed.lua http://127.0.0.1:8080 -- bench 10000 1024
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")

setup = common.setup
init = function(args) common.init(args, 80) end
request = common.request
done = common.done
