-- One class of the soak's traffic, for wrk (benches/soak.sh runs one wrk
-- per class, side by side):
--
--   [SOAK_PACE_MS=D] wrk ... -s class.lua URL -- CLASS EXPECT PATH COUNT RANGE_OF SEED
--
-- Each request GETs PATH with its "%d" replaced by a random number below
-- COUNT; PATH carries its own query (a good token, a bad one, or none).
-- With RANGE_OF above 0, each request asks a random aligned 64 KiB range of
-- an object of RANGE_OF bytes. With SOAK_PACE_MS set, each connection waits
-- D milliseconds after every answer before its next request, so that C
-- connections make about C * 1000 / D requests a second (wrk keeps whole
-- milliseconds). Every answer's status is counted, and one line sums the
-- run up for soak.sh:
--
--   soak-result class=CLASS requests=N expected=N unexpected=N statuses=200:N,...
--     err_connect=N err_read=N err_write=N err_timeout=N duration_us=N p50_us=N p99_us=N

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("thread_number", #threads)
end

-- Globals: done() reads them from the threads.
class, expect, statuses = nil, nil, {}
local path, count, range_of
local RANGE = 65536

function init(args)
    class = args[1]
    expect = tonumber(args[2])
    path = args[3]
    count = tonumber(args[4])
    range_of = tonumber(args[5])
    local seed = tonumber(args[6])
    assert(class and expect and path and count and range_of and seed,
        "usage: -- CLASS EXPECT PATH COUNT RANGE_OF SEED")
    math.randomseed(seed * 1000 + thread_number)
end

function request()
    local target = string.gsub(path, "%%d", tostring(math.random(count) - 1))
    if range_of > 0 then
        local first = (math.random(math.floor(range_of / RANGE)) - 1) * RANGE
        local headers = {}
        for name, value in pairs(wrk.headers) do
            headers[name] = value
        end
        headers["Range"] = string.format("bytes=%d-%d", first, first + RANGE - 1)
        return wrk.format("GET", target, headers)
    end
    return wrk.format("GET", target)
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

local pace = tonumber(os.getenv("SOAK_PACE_MS") or "")
if pace and pace > 0 then
    function delay()
        return pace
    end
end

function done(summary, latency, requests)
    local counts, name, want = {}, "?", nil
    for _, thread in ipairs(threads) do
        name = thread:get("class") or name
        want = thread:get("expect") or want
        for status, n in pairs(thread:get("statuses") or {}) do
            counts[status] = (counts[status] or 0) + n
        end
    end
    local codes, parts, total, expected = {}, {}, 0, 0
    for status in pairs(counts) do
        table.insert(codes, status)
    end
    table.sort(codes)
    for _, status in ipairs(codes) do
        local n = counts[status]
        total = total + n
        if status == want then
            expected = expected + n
        end
        table.insert(parts, string.format("%d:%d", status, n))
    end
    local e = summary.errors
    io.write(string.format(
        "soak-result class=%s requests=%d expected=%d unexpected=%d statuses=%s " ..
        "err_connect=%d err_read=%d err_write=%d err_timeout=%d duration_us=%d p50_us=%.0f p99_us=%.0f\n",
        name, total, expected, total - expected,
        (#parts > 0) and table.concat(parts, ",") or "none",
        e.connect, e.read, e.write, e.timeout, summary.duration,
        latency:percentile(50), latency:percentile(99)))
end
