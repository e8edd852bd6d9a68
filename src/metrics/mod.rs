//! Prometheus metrics: one registry owned by the node, served on the admin
//! listener. Names live in [`names`].

pub mod cluster;
pub mod fleet;
pub mod names;
pub mod ops;
mod per_request;
pub mod playback;
mod register;

use std::sync::Mutex;

use crate::cache::status::CacheStatus;
use crate::origin::OriginError;
use crate::refusal::Refusal;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub response_bytes: IntCounter,
    pub auth_rejections: IntCounterVec,
    pub request_rejections: IntCounterVec,
    pub origin_requests: IntCounterVec,
    pub origin_duration: Histogram,
    pub origin_bytes: IntCounter,
    pub origin_errors: IntCounterVec,
    pub cache_lookups: IntCounterVec,
    pub cache_fill_wait: Histogram,
    /// By `on`: `object`, `slice` ([`Collapsed`]); `fill` from the cache
    /// snapshot.
    pub collapsed: IntCounterVec,
    pub cache_purged: IntCounter,
    pub slices: SliceMetrics,
    cache: CacheFamilies,
    pub auth_policy: AuthPolicyMetrics,
    pub ops: ops::OpsMetrics,
    pub playback: playback::PlaybackMetrics,
    pub cluster: cluster::ClusterMetrics,
    per_request: per_request::PerRequest,
}

/// Slice caching of large objects.
pub struct SliceMetrics {
    pub origin_range_requests: IntCounter,
    pub origin_head_requests: IntCounter,
    pub origin_probe_requests: IntCounter,
    /// By `trigger`: `request` or `read_ahead`.
    pub fetched: IntCounterVec,
    pub served_from_disk: IntCounter,
    /// By `outcome`: `used` or `wasted`.
    pub read_ahead: IntCounterVec,
    pub version_changes: IntCounter,
    pub fetches_in_progress: IntGauge,
}

/// What a request waited on instead of asking the origin itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collapsed {
    /// The HEAD or probe GET that learns an object's length and version.
    Object,
    /// A slice's fetch.
    Slice,
    /// An ordinary fill, through the cache lock.
    Fill,
}

impl Collapsed {
    pub const ALL: [Collapsed; 3] = [Collapsed::Object, Collapsed::Slice, Collapsed::Fill];

    pub fn as_str(self) -> &'static str {
        match self {
            Collapsed::Object => "object",
            Collapsed::Slice => "slice",
            Collapsed::Fill => "fill",
        }
    }
}

/// What the disk cache reports at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSnapshot {
    pub stored_bytes: u64,
    pub stored_objects: u64,
    pub max_bytes: u64,
    pub disk_free_bytes: u64,
    /// Monotonic totals kept by the store and the eviction manager.
    pub evictions: u64,
    pub write_errors: u64,
    pub aborted_fills: u64,
    pub refused_fills: u64,
    pub memory_bytes: u64,
    pub memory_hits: u64,
    pub thread_copy_bytes: u64,
    /// Misses that waited for another request's fill (the cache lock).
    pub lock_waits: u64,
    /// A file could be created in the cache folder.
    pub writable: bool,
}

struct CacheFamilies {
    stored_bytes: IntGauge,
    stored_objects: IntGauge,
    max_bytes: IntGauge,
    disk_free: IntGauge,
    evictions: IntCounter,
    write_errors: IntCounter,
    aborted_fills: IntCounter,
    refused_fills: IntCounter,
    memory_bytes: IntGauge,
    memory_hits: IntCounter,
    thread_copy_bytes: IntGauge,
    writable: IntGauge,
    /// The totals already added to the counters.
    last: Mutex<CacheSnapshot>,
}

/// The token policy's metrics: key sets and the denylist.
pub struct AuthPolicyMetrics {
    pub key_refreshes: IntCounterVec,
    pub key_set_age: Gauge,
    pub keys_loaded: IntGauge,
    pub denylist_reloads: IntCounterVec,
    pub denylist_entries: IntGauge,
}

impl AuthPolicyMetrics {
    fn register(registry: &Registry) -> AuthPolicyMetrics {
        fn add<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
            m
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            add(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        AuthPolicyMetrics {
            key_refreshes: counter_vec(
                names::AUTH_KEY_REFRESHES_TOTAL,
                "Key-set loads, by source (file, url) and result (ok, error).",
                &["source", "result"],
            ),
            key_set_age: add(
                registry,
                Gauge::new(
                    names::AUTH_KEY_SET_AGE_SECONDS,
                    "Seconds since the oldest key source was last loaded successfully.",
                )
                .expect("valid metric"),
            ),
            keys_loaded: add(
                registry,
                IntGauge::new(names::AUTH_KEYS_LOADED, "Verification keys loaded now.")
                    .expect("valid metric"),
            ),
            denylist_reloads: counter_vec(
                names::AUTH_DENYLIST_RELOADS_TOTAL,
                "Denylist file reloads, by result (ok, error).",
                &["result"],
            ),
            denylist_entries: add(
                registry,
                IntGauge::new(
                    names::AUTH_DENYLIST_ENTRIES,
                    "Entries on the denylist now (file and admin).",
                )
                .expect("valid metric"),
            ),
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let requests = counter_vec(
            names::REQUESTS_TOTAL,
            "Client requests answered, by status class and cache status.",
            &["status_class", "cache_status"],
        );
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                names::REQUEST_DURATION_SECONDS,
                "Time from request start to the end of the response.",
            )
            .buckets(names::REQUEST_BUCKETS.to_vec()),
            &["cache_status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("unique metric");
        let response_bytes = counter(
            names::RESPONSE_BYTES_TOTAL,
            "Response body bytes sent to clients.",
        );
        let auth_rejections = counter_vec(
            names::AUTH_REJECTIONS_TOTAL,
            "Requests refused by the token gate, by reason.",
            &["reason"],
        );
        let request_rejections = counter_vec(
            names::REQUEST_REJECTIONS_TOTAL,
            "Requests refused before the token gate, by reason.",
            &["reason"],
        );
        let origin_requests = counter_vec(
            names::ORIGIN_REQUESTS_TOTAL,
            "Responses received from the origin, by status class.",
            &["status_class"],
        );
        let origin_duration = Histogram::with_opts(
            HistogramOpts::new(
                names::ORIGIN_DURATION_SECONDS,
                "Time from sending the origin request to its response header.",
            )
            .buckets(names::ORIGIN_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(origin_duration.clone()))
            .expect("unique metric");
        let origin_bytes = counter(
            names::ORIGIN_BYTES_TOTAL,
            "Body bytes received from the origin.",
        );
        let origin_errors = counter_vec(
            names::ORIGIN_ERRORS_TOTAL,
            "Origin failures, by kind.",
            &["kind"],
        );
        let cache_lookups = counter_vec(
            names::CACHE_LOOKUPS_TOTAL,
            "Cache lookups, by result.",
            &["result"],
        );
        for result in CacheStatus::LOOKUPS {
            cache_lookups.with_label_values(&[result.as_str()]);
        }
        let cache_fill_wait = Histogram::with_opts(
            HistogramOpts::new(
                names::CACHE_FILL_WAIT_SECONDS,
                "Time a request waited for another request's fill.",
            )
            .buckets(names::FILL_WAIT_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(cache_fill_wait.clone()))
            .expect("unique metric");
        let collapsed = counter_vec(
            names::COLLAPSED_REQUESTS_TOTAL,
            "Requests that waited for another request's origin fetch of the same object or slice instead of making their own, by what they waited on.",
            &["on"],
        );
        for on in Collapsed::ALL {
            collapsed.with_label_values(&[on.as_str()]);
        }
        let cache_purged = counter(
            names::CACHE_PURGED_TOTAL,
            "Objects removed through the admin purge endpoint.",
        );
        let slices = SliceMetrics {
            origin_range_requests: counter(
                names::ORIGIN_RANGE_REQUESTS_TOTAL,
                "Range requests sent to the origin for slices.",
            ),
            origin_head_requests: counter(
                names::ORIGIN_HEAD_REQUESTS_TOTAL,
                "HEAD requests sent to the origin for an object's size and version.",
            ),
            origin_probe_requests: counter(
                names::ORIGIN_PROBE_REQUESTS_TOTAL,
                "Probe GETs of an object's first bytes sent to the origin to learn it.",
            ),
            fetched: counter_vec(
                names::SLICES_FETCHED_TOTAL,
                "Slices fetched from the origin and stored, by trigger.",
                &["trigger"],
            ),
            served_from_disk: counter(
                names::SLICES_SERVED_FROM_DISK_TOTAL,
                "Slices a response read from disk without waiting for a fetch.",
            ),
            read_ahead: counter_vec(
                names::SLICE_READ_AHEAD_TOTAL,
                "Read-ahead slices, by outcome (used, wasted).",
                &["outcome"],
            ),
            version_changes: counter(
                names::SLICE_VERSION_CHANGES_TOTAL,
                "Sliced objects found changed at the origin; their slices were dropped.",
            ),
            fetches_in_progress: {
                let g = IntGauge::new(
                    names::SLICE_FETCHES_IN_PROGRESS,
                    "Slice fetches under way now (request and read-ahead).",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
        };
        for trigger in ["request", "read_ahead"] {
            slices.fetched.with_label_values(&[trigger]);
        }
        for outcome in ["used", "wasted"] {
            slices.read_ahead.with_label_values(&[outcome]);
        }
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let cache = CacheFamilies {
            stored_bytes: gauge(
                names::CACHE_STORED_BYTES,
                "Bytes of complete objects on disk.",
            ),
            stored_objects: gauge(names::CACHE_STORED_OBJECTS, "Complete objects on disk."),
            max_bytes: gauge(names::CACHE_MAX_BYTES, "The configured cache.max_size."),
            disk_free: gauge(
                names::DISK_FREE_BYTES,
                "Free space of the cache's filesystem.",
            ),
            evictions: counter(
                names::CACHE_EVICTIONS_TOTAL,
                "Objects evicted to stay under cache.max_size.",
            ),
            write_errors: counter(
                names::CACHE_WRITE_ERRORS_TOTAL,
                "Disk writes that failed; the client was served uncached.",
            ),
            aborted_fills: counter(
                names::CACHE_ABORTED_FILLS_TOTAL,
                "Fills that ended before the whole object arrived.",
            ),
            refused_fills: counter(
                names::CACHE_REFUSED_FILLS_TOTAL,
                "Fills refused before they started: too large or too little free space.",
            ),
            memory_bytes: gauge(
                names::CACHE_MEMORY_BYTES,
                "Bytes of small bodies held in memory.",
            ),
            memory_hits: counter(
                names::CACHE_MEMORY_HITS_TOTAL,
                "Hits served from the memory copy of a small body.",
            ),
            thread_copy_bytes: gauge(
                names::CACHE_THREAD_COPY_BYTES,
                "Bytes of the worker threads' own copies of hot small objects (bodies, plus 512 per copy).",
            ),
            writable: gauge(
                names::CACHE_WRITABLE,
                "1 when a file can be created in the cache folder (checked at scrape time), 0 when not.",
            ),
            last: Mutex::new(CacheSnapshot::default()),
        };
        let build_info = IntGaugeVec::new(
            Opts::new(
                names::BUILD_INFO,
                "Constant 1, labelled with the node's version.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry
            .register(Box::new(build_info))
            .expect("unique metric");
        let auth_policy = AuthPolicyMetrics::register(&registry);
        for reason in crate::auth::Reject::REASONS {
            auth_rejections.with_label_values(&[reason]);
        }
        let ops = ops::OpsMetrics::register(&registry);
        let playback = playback::PlaybackMetrics::register(&registry);
        let cluster = cluster::ClusterMetrics::register(&registry);
        Metrics {
            cluster,
            per_request: per_request::PerRequest::default(),
            ops,
            playback,
            auth_policy,
            registry,
            requests,
            request_duration,
            response_bytes,
            auth_rejections,
            request_rejections,
            origin_requests,
            origin_duration,
            origin_bytes,
            origin_errors,
            cache_lookups,
            cache_fill_wait,
            collapsed,
            cache_purged,
            slices,
            cache,
        }
    }

    /// Registers the fleet's metrics: once, for a node with a `fleet`
    /// section (a node without one exports none of them).
    pub fn register_fleet(&self) -> fleet::FleetMetrics {
        fleet::FleetMetrics::register(&self.registry)
    }

    /// Brings the cache families up to date with a snapshot taken at
    /// scrape time. Counters move by the growth of the store's totals.
    pub fn refresh_cache(&self, snap: &CacheSnapshot) {
        let c = &self.cache;
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        c.stored_bytes.set(as_i64(snap.stored_bytes));
        c.stored_objects.set(as_i64(snap.stored_objects));
        c.max_bytes.set(as_i64(snap.max_bytes));
        c.disk_free.set(as_i64(snap.disk_free_bytes));
        c.memory_bytes.set(as_i64(snap.memory_bytes));
        c.thread_copy_bytes.set(as_i64(snap.thread_copy_bytes));
        c.writable.set(i64::from(snap.writable));
        if let Ok(mut last) = c.last.lock() {
            c.evictions
                .inc_by(snap.evictions.saturating_sub(last.evictions));
            c.write_errors
                .inc_by(snap.write_errors.saturating_sub(last.write_errors));
            c.aborted_fills
                .inc_by(snap.aborted_fills.saturating_sub(last.aborted_fills));
            c.refused_fills
                .inc_by(snap.refused_fills.saturating_sub(last.refused_fills));
            c.memory_hits
                .inc_by(snap.memory_hits.saturating_sub(last.memory_hits));
            self.collapsed
                .with_label_values(&[Collapsed::Fill.as_str()])
                .inc_by(snap.lock_waits.saturating_sub(last.lock_waits));
            *last = *snap;
        }
    }

    /// One answered request: `requests` by status class and cache status,
    /// its time in `request_duration` by cache status.
    pub fn count_request(&self, status: u16, cache_status: CacheStatus, seconds: f64) {
        self.per_request.request(
            &self.requests,
            &self.request_duration,
            status,
            cache_status,
            seconds,
        );
    }

    /// A request the node refused itself: by the token gate's reason in
    /// `auth_rejections`, or (refused before the gate) by the request's
    /// fault in `request_rejections`. Refusals for the origin's sake (404,
    /// 502, ...) are counted where the origin's answer is.
    pub fn count_refusal(&self, refusal: Refusal) {
        if let Some(reject) = refusal.reject() {
            self.auth_rejections
                .with_label_values(&[reject.reason()])
                .inc();
            return;
        }
        let reason = match refusal {
            Refusal::HopForbidden(invalid) => {
                self.cluster
                    .hops_refused
                    .with_label_values(&[invalid.as_str()])
                    .inc();
                return;
            }
            Refusal::Loop => {
                self.cluster.hops_refused.with_label_values(&["loop"]).inc();
                return;
            }
            Refusal::BadRequest(bad) => bad.as_str(),
            Refusal::MethodNotAllowed(_) => "method",
            _ => return,
        };
        self.request_rejections.with_label_values(&[reason]).inc();
    }

    /// An origin failure in `origin_errors`.
    pub fn count_origin_error(&self, kind: OriginError) {
        self.origin_errors.with_label_values(&[kind.as_str()]).inc();
    }

    /// A failed request to another node of the fleet (`to` names its role).
    pub fn count_peer_error(&self, to: crate::origin::Upstream, kind: &str) {
        if to.node().is_some() {
            self.cluster
                .errors
                .with_label_values(&[to.as_str(), kind])
                .inc();
        }
    }

    /// A request sent to another node of the fleet.
    pub fn count_forward(&self, to: crate::origin::Upstream) {
        if to.node().is_some() {
            self.cluster
                .forwards
                .with_label_values(&[to.as_str()])
                .inc();
        }
    }

    /// One request that waits for another's origin fetch (`on`).
    pub fn count_collapsed(&self, on: Collapsed) {
        self.collapsed.with_label_values(&[on.as_str()]).inc();
    }

    /// One cache lookup in `cache_lookups`; `None` (no lookup) counts nothing.
    pub fn count_lookup(&self, result: CacheStatus) {
        self.per_request.lookup(&self.cache_lookups, result);
    }

    /// The exposition in Prometheus' text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a failure would be a bug in
        // a metric definition, and then an empty page is the honest answer.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `"2xx"` for 204 and so on; `"none"` when no response was sent.
pub fn status_class(status: u16) -> &'static str {
    per_request::STATUS_CLASSES[per_request::class_index(status)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Reject;
    use crate::refusal::BadRequest;
    use crate::request::method::MethodSet;

    #[test]
    fn refusals_are_counted_by_reason() {
        let m = Metrics::new();
        m.count_refusal(Refusal::from(Reject::Expired));
        m.count_refusal(Refusal::from(Reject::OutOfScope));
        m.count_refusal(Refusal::from(Reject::Conflict));
        m.count_refusal(Refusal::BadRequest(BadRequest::Query));
        m.count_refusal(Refusal::MethodNotAllowed(MethodSet::READ));
        m.count_refusal(Refusal::NotFound);
        m.count_refusal(Refusal::BadGateway(OriginError::S3Denied));
        // Only the reasons counted have series: 404 and 502 are not the
        // client's refusals, and a conflict is the gate's.
        let series = prometheus::core::Collector::collect(&m.request_rejections)[0]
            .get_metric()
            .len();
        assert_eq!(series, 2);
        let auth = |r: &str| m.auth_rejections.with_label_values(&[r]).get();
        let request = |r: &str| m.request_rejections.with_label_values(&[r]).get();
        assert_eq!(auth("expired"), 1);
        assert_eq!(auth("out_of_scope"), 1);
        assert_eq!(auth("conflict"), 1);
        assert_eq!(request("query"), 1);
        assert_eq!(request("method"), 1);
    }
}
