-- Prints one machine-readable line when wrk finishes; benches/load.sh reads it.
-- Latencies are in microseconds, the duration too. Only `done` is defined, so
-- wrk's per-request path stays as fast as without a script.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "wrk-result requests=%d bytes=%d duration_us=%d p50_us=%.0f p99_us=%.0f " ..
        "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
        summary.requests, summary.bytes, summary.duration,
        latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.status, e.timeout))
end
