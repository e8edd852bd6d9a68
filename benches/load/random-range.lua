-- Random aligned ranges of one object, one per request, for wrk:
--
--   wrk ... -s random-range.lua URL -- OBJECT_BYTES RANGE_BYTES SEED
--
-- Each request asks `Range: bytes=N-N+RANGE_BYTES-1` with N a random multiple
-- of RANGE_BYTES inside the object. Every wrk thread draws from its own
-- generator, seeded with SEED plus its number, so a run asks the same
-- sequence of ranges of every server. The machine-readable summary line is
-- wrk-result.lua's, loaded from the same folder.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk-result.lua")

local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("thread_number", threads)
end

local slots, range_bytes, headers

function init(args)
    local object_bytes = tonumber(args[1])
    range_bytes = tonumber(args[2])
    local seed = tonumber(args[3])
    assert(object_bytes and range_bytes and seed,
        "usage: -- OBJECT_BYTES RANGE_BYTES SEED")
    slots = math.floor(object_bytes / range_bytes)
    assert(slots >= 1, "the object is smaller than one range")
    math.randomseed(seed + thread_number)
    headers = {}
    for name, value in pairs(wrk.headers) do
        headers[name] = value
    end
end

function request()
    local first = (math.random(slots) - 1) * range_bytes
    headers["Range"] = string.format("bytes=%d-%d", first, first + range_bytes - 1)
    return wrk.format(nil, nil, headers)
end
