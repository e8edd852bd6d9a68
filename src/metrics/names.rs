//! Every metric name the node exports, in one place. The metrics table in
//! `docs/metrics.md` lists the same names; labels are low-cardinality by design (status
//! class, cache status, reason, kind: never a path, token or subject).

/// Client requests answered, by `status_class` (1xx..5xx) and `cache_status`.
pub const REQUESTS_TOTAL: &str = "cdn_node_requests_total";
/// Time from request start to the end of the response, by `cache_status`.
pub const REQUEST_DURATION_SECONDS: &str = "cdn_node_request_duration_seconds";
/// Response body bytes sent to clients.
pub const RESPONSE_BYTES_TOTAL: &str = "cdn_node_response_body_bytes_total";
/// Requests refused by the token gate, by `reason`.
pub const AUTH_REJECTIONS_TOTAL: &str = "cdn_node_auth_rejections_total";
/// Requests refused before the token gate (method, path, query), by `reason`.
pub const REQUEST_REJECTIONS_TOTAL: &str = "cdn_node_request_rejections_total";
/// Responses received from the origin, by `status_class`.
pub const ORIGIN_REQUESTS_TOTAL: &str = "cdn_node_origin_requests_total";
/// Time from sending the origin request to its response header.
pub const ORIGIN_DURATION_SECONDS: &str = "cdn_node_origin_response_duration_seconds";
/// Body bytes received from the origin.
pub const ORIGIN_BYTES_TOTAL: &str = "cdn_node_origin_body_bytes_total";
/// Origin failures, by `kind` (connect, timeout, dns, s3_denied, s3_server_error, protocol).
pub const ORIGIN_ERRORS_TOTAL: &str = "cdn_node_origin_errors_total";
/// CORS preflights by `outcome` (answered, origin, method, headers).
pub const CORS_PREFLIGHTS_TOTAL: &str = "cdn_node_cors_preflights_total";
/// Manifests (HLS, DASH) sent with the request's token added to their URIs.
pub const MANIFESTS_REWRITTEN_TOTAL: &str = "cdn_node_manifests_rewritten_total";
/// Manifests that needed the token added but were sent as stored, by
/// `reason` (too_large, unparsable, encoded).
pub const MANIFESTS_AS_STORED_TOTAL: &str = "cdn_node_manifests_as_stored_total";
/// Constant 1, labelled with the node's `version`.
pub const BUILD_INFO: &str = "cdn_node_build_info";

/// Latency buckets for client responses (seconds): from sub-millisecond
/// cache hits to long video downloads.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Latency buckets for the origin's time to response header (seconds).
pub const ORIGIN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Cache lookups by `result` (hit, miss, stale, expired, revalidated, bypass).
pub const CACHE_LOOKUPS_TOTAL: &str = "cdn_node_cache_lookups_total";
/// Bytes of complete objects on disk.
pub const CACHE_STORED_BYTES: &str = "cdn_node_cache_stored_bytes";
/// Complete objects on disk.
pub const CACHE_STORED_OBJECTS: &str = "cdn_node_cache_stored_objects";
/// Bytes of small bodies held in memory (`cache.memory_size`).
pub const CACHE_MEMORY_BYTES: &str = "cdn_node_cache_memory_bytes";
/// Bytes of the worker threads' own copies of hot small objects.
pub const CACHE_THREAD_COPY_BYTES: &str = "cdn_node_cache_thread_copy_bytes";
/// Hits served from the memory copy of a small body, without a file.
pub const CACHE_MEMORY_HITS_TOTAL: &str = "cdn_node_cache_memory_hits_total";
/// The configured `cache.max_size`.
pub const CACHE_MAX_BYTES: &str = "cdn_node_cache_max_bytes";
/// Objects evicted to stay under `cache.max_size`.
pub const CACHE_EVICTIONS_TOTAL: &str = "cdn_node_cache_evictions_total";
/// Disk writes that failed (the client was still served, uncached).
pub const CACHE_WRITE_ERRORS_TOTAL: &str = "cdn_node_cache_write_errors_total";
/// Fills that ended before the whole object arrived (nothing kept).
pub const CACHE_ABORTED_FILLS_TOTAL: &str = "cdn_node_cache_aborted_fills_total";
/// Fills refused before they started: object over `cache.max_object_size`
/// or free space under `cache.min_free_space` (the client is served
/// uncached).
pub const CACHE_REFUSED_FILLS_TOTAL: &str = "cdn_node_cache_refused_fills_total";
/// Time a request waited for another request's fill (cache lock).
pub const CACHE_FILL_WAIT_SECONDS: &str = "cdn_node_cache_fill_wait_seconds";
/// Requests that waited for another request's origin fetch of the same
/// object or slice instead of making their own, by `on`: `object` (the
/// HEAD or probe GET that learns an object), `slice` (a slice's fetch),
/// `fill` (an ordinary fill, through the cache lock).
pub const COLLAPSED_REQUESTS_TOTAL: &str = "cdn_node_collapsed_requests_total";
/// Free space of the cache's filesystem.
pub const DISK_FREE_BYTES: &str = "cdn_node_disk_free_bytes";
/// 1 when a file can be created in the cache folder (checked at scrape
/// time), 0 when not (folder removed, filesystem read-only).
pub const CACHE_WRITABLE: &str = "cdn_node_cache_writable";
/// Objects removed through the admin purge endpoint.
pub const CACHE_PURGED_TOTAL: &str = "cdn_node_cache_purged_objects_total";

/// Buckets for waiting on a fill (seconds).
pub const FILL_WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];
/// Key-set loads, by `source` (file, url) and `result` (ok, error).
pub const AUTH_KEY_REFRESHES_TOTAL: &str = "cdn_node_auth_key_refreshes_total";
/// Seconds since the oldest key source was last loaded or fetched successfully.
pub const AUTH_KEY_SET_AGE_SECONDS: &str = "cdn_node_auth_key_set_age_seconds";
/// Verification keys loaded now.
pub const AUTH_KEYS_LOADED: &str = "cdn_node_auth_keys_loaded";
/// Denylist file reloads, by `result` (ok, error).
pub const AUTH_DENYLIST_RELOADS_TOTAL: &str = "cdn_node_auth_denylist_reloads_total";
/// Entries on the denylist now (file and admin).
pub const AUTH_DENYLIST_ENTRIES: &str = "cdn_node_auth_denylist_entries";

/// Range requests sent to the origin for slices.
pub const ORIGIN_RANGE_REQUESTS_TOTAL: &str = "cdn_node_origin_range_requests_total";
/// HEAD requests sent to the origin to learn an object's size and version.
pub const ORIGIN_HEAD_REQUESTS_TOTAL: &str = "cdn_node_origin_head_requests_total";
/// Probe GETs (the first bytes, `Range: bytes=0-65535`) sent to the origin to
/// learn an object, and to get the whole of a small one, on a plain cold GET.
pub const ORIGIN_PROBE_REQUESTS_TOTAL: &str = "cdn_node_origin_probe_requests_total";
/// Slices fetched from the origin and stored, by `trigger` (request, read_ahead).
pub const SLICES_FETCHED_TOTAL: &str = "cdn_node_slices_fetched_total";
/// Slices a client response read from disk without waiting for a fetch.
pub const SLICES_SERVED_FROM_DISK_TOTAL: &str = "cdn_node_slices_served_from_disk_total";
/// Read-ahead slices by `outcome`: `used` (a later request read them) or
/// `wasted` (their object changed, or they were forgotten, before any use).
pub const SLICE_READ_AHEAD_TOTAL: &str = "cdn_node_slice_read_ahead_total";
/// Sliced objects found changed at the origin (ETag), whose slices were dropped.
pub const SLICE_VERSION_CHANGES_TOTAL: &str = "cdn_node_slice_version_changes_total";
/// Slice fetches under way now (request and read-ahead).
pub const SLICE_FETCHES_IN_PROGRESS: &str = "cdn_node_slice_fetches_in_progress";
/// Client connections open now, TLS handshakes in progress included.
pub const CONNECTIONS_OPEN: &str = "cdn_node_connections_open";
/// Client connections closed at once, by `reason` (max_connections, per_client).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "cdn_node_connections_refused_total";
/// Requests answered by the HTTP/1 hit lane, before Pingora's session (a
/// part of `cdn_node_requests_total`).
pub const LANE_ANSWERS_TOTAL: &str = "cdn_node_lane_answers_total";
/// Disk hits the hit lane sent from the body file with `sendfile` (a part
/// of `cdn_node_lane_answers_total`).
pub const FILE_HITS_TOTAL: &str = "cdn_node_file_hits_total";
/// Client connections closed because a request header was not complete
/// within `limits.header_timeout_ms`.
pub const HEADER_TIMEOUTS_TOTAL: &str = "cdn_node_header_timeouts_total";
/// Requests refused for the size of their head, by `reason` (uri_too_long,
/// field_too_large, header_too_large): answered 414 or 431 before the
/// request reaches the proxy.
pub const REQUEST_HEADER_REFUSALS_TOTAL: &str = "cdn_node_request_header_refusals_total";
/// TLS handshakes that did not complete, by `reason` (timeout: not within
/// `limits.tls_handshake_timeout_ms`; error: failed or abandoned).
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "cdn_node_tls_handshake_failures_total";
/// New TLS connections handed to another worker thread before their
/// handshake, the thread they arrived on being busier with handshakes.
pub const TLS_HANDSHAKES_MOVED_TOTAL: &str = "cdn_node_tls_handshakes_moved_total";
/// TLS certificate reloads, by `result` (ok, error).
pub const TLS_CERT_RELOADS_TOTAL: &str = "cdn_node_tls_cert_reloads_total";
/// Access log file reopenings (SIGUSR1), by `result` (ok, error).
pub const ACCESS_LOG_REOPENS_TOTAL: &str = "cdn_node_access_log_reopens_total";
/// Requests sent to another node of the fleet, by `to` (peer: the PoP
/// member owning the key; parent: the shield owning it).
pub const PEER_FORWARDS_TOTAL: &str = "cdn_node_peer_forwards_total";
/// Failed requests to another node, by `to` and `kind` (connect, timeout,
/// other); each moves the request to the next node.
pub const PEER_ERRORS_TOTAL: &str = "cdn_node_peer_errors_total";
/// Connections open now on the peer listener (hops from other nodes).
pub const PEER_CONNECTIONS_OPEN: &str = "cdn_node_peer_connections_open";
/// Members of a ring, by `ring` (pop, parents).
pub const RING_MEMBERS: &str = "cdn_node_ring_members";
/// Members of a ring that are healthy and not recently failed, by `ring`.
pub const RING_HEALTHY_MEMBERS: &str = "cdn_node_ring_healthy_members";
/// Requests refused on the peer listener or for a loop, by `reason`.
pub const HOPS_REFUSED_TOTAL: &str = "cdn_node_hops_refused_total";
/// 1 while the node reaches the fleet's etcd, 0 otherwise (absent without a
/// `fleet` section).
pub const FLEET_ETCD_CONNECTED: &str = "cdn_node_fleet_etcd_connected";
/// 1 while the fleet's rules are listed and watched, 0 while the node
/// serves with what it applied last and tries again.
pub const FLEET_WATCH_UP: &str = "cdn_node_fleet_watch_up";
/// Full listings of the fleet's keys, by `reason` (start, error,
/// compacted, canceled).
pub const FLEET_LISTS_TOTAL: &str = "cdn_node_fleet_lists_total";
/// Seconds from a rule's making to its application on this node.
pub const FLEET_WATCH_LAG_SECONDS: &str = "cdn_node_fleet_watch_lag_seconds";
/// Rules applied, by `kind` (purge, revocation, revocation_expired).
pub const FLEET_RULES_APPLIED_TOTAL: &str = "cdn_node_fleet_rules_applied_total";
/// Members of this node's PoP seen in etcd (this node included once it
/// joined).
pub const FLEET_MEMBERS: &str = "cdn_node_fleet_members";
