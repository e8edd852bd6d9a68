//! Cost of the `logging` hook's own work for one request: the access log
//! line (target with its token redacted, client, time, JSON) and the three
//! request metrics.
//!
//! Every request pays this after its response, so it is part of the
//! per-hit cost of the node. The line is built into a buffer that is
//! cleared after each one: the buffer's lock and the file writes are left
//! out, as they are the same whatever builds the line.
//!
//! Run: `cargo bench --bench access_line -- --warm-up-time 1 --measurement-time 3`

use std::net::SocketAddrV4;
use std::time::SystemTime;

use cdn_node::access_log::{Client, Entry};
use cdn_node::auth::settings::default_token_sources;
use cdn_node::cache::status::CacheStatus;
use cdn_node::metrics::{Metrics, status_class};
use criterion::{Criterion, criterion_group, criterion_main};

/// (case, raw request target)
const TARGETS: [(&str, &str); 3] = [
    ("plain", "/courses/101/hls/seg-00042.ts"),
    (
        "token",
        "/courses/101/hls/seg-00042.ts?jwt=eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.\
         eyJzdWIiOiJzdHVkZW50LTciLCJleHAiOjE3MDAwMDM2MDB9.c2lnbmF0dXJlLWJ5dGVz&start=10",
    ),
    (
        "params",
        "/v/a.m3u8?a=1&b=2&c=3&d=4&e=5&f=6&g=7&token=t0k3n&h=8",
    ),
];

fn line(c: &mut Criterion) {
    let mut out = Vec::with_capacity(4096);
    let sources = default_token_sources();
    let peer: SocketAddrV4 = "192.0.2.7:51234".parse().expect("address");
    let mut group = c.benchmark_group("access_line");
    for (case, raw) in TARGETS {
        group.bench_function(case, |b| {
            b.iter(|| {
                let entry = Entry {
                    time: SystemTime::now(),
                    client: Some(Client::V4(peer)),
                    method: "GET",
                    target: std::hint::black_box(raw),
                    token_sources: &sources,
                    status: 200,
                    bytes: 1024,
                    duration_ms: 0.173,
                    cache: "hit",
                    origin_status: None,
                    origin_ms: None,
                    origin_error: None,
                    s3_code: None,
                    auth: "ok",
                    sub: Some("student-7"),
                };
                entry.write_line(&mut out);
                out.clear();
            })
        });
    }
    group.finish();
}

/// The three request metrics of a hit: looked up by label values on every
/// call (as the hook once did) and through the kept series.
fn metrics(c: &mut Criterion) {
    let m = Metrics::new();
    let mut group = c.benchmark_group("request_metrics");
    group.bench_function("by_label", |b| {
        b.iter(|| {
            let cache = std::hint::black_box("hit");
            m.cache_lookups.with_label_values(&[cache]).inc();
            m.requests
                .with_label_values(&[status_class(std::hint::black_box(200)), cache])
                .inc();
            m.request_duration
                .with_label_values(&[cache])
                .observe(0.000_173);
        })
    });
    group.bench_function("kept", |b| {
        b.iter(|| {
            let cache = std::hint::black_box(CacheStatus::Hit);
            m.count_lookup(cache);
            m.count_request(std::hint::black_box(200), cache, 0.000_173);
        })
    });
    group.finish();
}

criterion_group!(benches, line, metrics);
criterion_main!(benches);
