//! The YAML shape of our own configuration sections. Every section rejects
//! unknown keys; defaults are named constants so the reference in
//! `docs/configuration.md` and the code agree.

use serde::Deserialize;

pub const DEFAULT_THREADS: usize = 2;
/// The most worker threads `server.threads` allows.
pub const MAX_THREADS: usize = 256;
pub const DEFAULT_PID_FILE: &str = "/tmp/cdn-node.pid";
pub const DEFAULT_UPGRADE_SOCK: &str = "/tmp/cdn-node-upgrade.sock";
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_RESOLVE_INTERVAL_SECONDS: u64 = 30;
pub const DEFAULT_REGION: &str = "us-east-1";

/// Process-wide settings handed to Pingora's `ServerConf`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_threads")]
    pub threads: usize,
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    #[serde(default)]
    pub error_log: Option<String>,
    #[serde(default)]
    pub grace_period_seconds: Option<u64>,
    #[serde(default)]
    pub graceful_shutdown_timeout_seconds: Option<u64>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            threads: DEFAULT_THREADS,
            pid_file: DEFAULT_PID_FILE.to_string(),
            upgrade_sock: DEFAULT_UPGRADE_SOCK.to_string(),
            error_log: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
        }
    }
}

fn default_threads() -> usize {
    DEFAULT_THREADS
}
fn default_pid_file() -> String {
    DEFAULT_PID_FILE.to_string()
}
fn default_upgrade_sock() -> String {
    DEFAULT_UPGRADE_SOCK.to_string()
}

/// Where clients connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersSection {
    /// Plain HTTP listen addresses, `IP:PORT`.
    #[serde(default)]
    pub http: Vec<String>,
    /// HTTPS listeners (HTTP/2 and HTTP/1.1 by ALPN).
    #[serde(default)]
    pub https: Vec<HttpsSection>,
}

/// One HTTPS listener: address, PEM certificate chain (leaf first) and PEM
/// private key. Both files are read again when they change, or on SIGHUP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSection {
    pub listen: String,
    pub cert_file: String,
    pub key_file: String,
}

pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_HEADER_BYTES: &str = "32KiB";
pub const DEFAULT_MAX_HEADER_FIELD_BYTES: &str = "8KiB";
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Limits on client connections (the admin listener has none).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Total time a client has to send a whole request header, from the
    /// connection's start or the request's first byte.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Client connections open at once, all listeners together.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Client connections open at once from one IP address; none: no limit.
    #[serde(default)]
    pub max_connections_per_client: Option<usize>,
    /// The most a request head (request line and fields) may take.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// The most one line of a request head (the request line or a field)
    /// may take.
    #[serde(default = "default_max_header_field_bytes")]
    pub max_header_field_bytes: ByteSize,
    /// Time a client has to complete its TLS handshake, from the accept.
    #[serde(default = "default_tls_handshake_timeout_ms")]
    pub tls_handshake_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: None,
            max_header_bytes: default_max_header_bytes(),
            max_header_field_bytes: default_max_header_field_bytes(),
            tls_handshake_timeout_ms: DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
        }
    }
}

fn default_header_timeout_ms() -> u64 {
    DEFAULT_HEADER_TIMEOUT_MS
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_header_bytes() -> ByteSize {
    ByteSize::parse(DEFAULT_MAX_HEADER_BYTES).unwrap_or(ByteSize(0))
}
fn default_max_header_field_bytes() -> ByteSize {
    ByteSize::parse(DEFAULT_MAX_HEADER_FIELD_BYTES).unwrap_or(ByteSize(0))
}
fn default_tls_handshake_timeout_ms() -> u64 {
    DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS
}

/// The operators' listener: `/metrics`, `/healthz`, `/readyz`, and
/// `/purge` when an admin token is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub listen: String,
    /// File holding the bearer token that `/purge` requires.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Environment variable holding that token (instead of a file).
    #[serde(default)]
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// `https://endpoint/bucket/key`
    Path,
    /// `https://bucket.endpoint/key`
    Virtual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    Env,
    /// The `*_file` settings.
    Files,
    /// Unsigned requests, for a public bucket.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSection {
    pub from: CredentialSource,
    #[serde(default)]
    pub access_key_id_file: Option<String>,
    #[serde(default)]
    pub secret_access_key_file: Option<String>,
    #[serde(default)]
    pub session_token_file: Option<String>,
}

/// What kind of server the origin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginKind {
    /// An S3 bucket: requests are built from scratch and signed.
    #[default]
    S3,
    /// A plain HTTP server: unsigned, end-to-end headers passed through.
    Http,
}

/// Where misses go: a shield tier (`parents`), then the origin itself (an
/// S3 bucket, or a plain HTTP server).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSection {
    #[serde(default)]
    pub kind: OriginKind,
    /// `http://host[:port]` or `https://host[:port]`, no path. May be left
    /// out when `parents` are given: misses then go to the shields only.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket (`kind: s3` only).
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default = "default_addressing")]
    pub addressing: Addressing,
    /// How requests to S3 are signed (`kind: s3` only).
    #[serde(default)]
    pub credentials: Option<CredentialsSection>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    #[serde(default = "default_resolve_interval_seconds")]
    pub resolve_interval_seconds: u64,
    /// Client query parameters passed to the origin and kept in the cache
    /// key; `"*"` names them all. Default: none before S3, all before a
    /// plain HTTP origin.
    #[serde(default)]
    pub forward_query: Option<Vec<String>>,
    /// Request methods besides GET and HEAD passed to the origin, uncached;
    /// `"*"` names them all but CONNECT and TRACE. Default: none before S3,
    /// all before a plain HTTP origin.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The shield tier: the peer listeners (`IP:PORT`) of the cdn-node
    /// shields this node's misses go to, chosen by the cache key.
    #[serde(default)]
    pub parents: Vec<String>,
}

fn default_region() -> String {
    DEFAULT_REGION.to_string()
}
fn default_addressing() -> Addressing {
    Addressing::Path
}
fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_read_timeout_ms() -> u64 {
    DEFAULT_READ_TIMEOUT_MS
}
fn default_resolve_interval_seconds() -> u64 {
    DEFAULT_RESOLVE_INTERVAL_SECONDS
}

/// Access log destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Write one JSON line per request to stdout (default true).
    #[serde(default = "default_true")]
    pub access_stdout: bool,
    /// Also append the lines to this file; reopened on SIGUSR1.
    #[serde(default)]
    pub access_file: Option<String>,
    /// Each worker thread gathers lines up to this many bytes before a
    /// write; 0 writes each line at once.
    #[serde(default = "default_access_buffer")]
    pub access_buffer: ByteSize,
    /// Gathered lines are written at least this often.
    #[serde(default = "default_access_flush_ms")]
    pub access_flush_ms: u64,
}

pub const DEFAULT_ACCESS_BUFFER: &str = "64KiB";
pub const DEFAULT_ACCESS_FLUSH_MS: u64 = 1000;

fn default_access_buffer() -> ByteSize {
    ByteSize::parse(DEFAULT_ACCESS_BUFFER).unwrap_or(ByteSize(0))
}
fn default_access_flush_ms() -> u64 {
    DEFAULT_ACCESS_FLUSH_MS
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            access_stdout: true,
            access_file: None,
            access_buffer: default_access_buffer(),
            access_flush_ms: DEFAULT_ACCESS_FLUSH_MS,
        }
    }
}

fn default_true() -> bool {
    true
}

pub const DEFAULT_CACHE_MAX_SIZE: &str = "10GiB";
pub const DEFAULT_MAX_OBJECT_SIZE: &str = "8GiB";
pub const DEFAULT_MIN_FREE_SPACE: &str = "1GiB";
pub const DEFAULT_MEMORY_SIZE: &str = "64MiB";
pub const DEFAULT_MEMORY_OBJECT_MAX_SIZE: &str = "64KiB";
pub const DEFAULT_SLICE_THRESHOLD: &str = "64MiB";
pub const DEFAULT_SLICE_SIZE: &str = "4MiB";
pub const DEFAULT_READ_AHEAD_SLICES: u32 = 2;
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_NOT_FOUND_TTL_SECONDS: u64 = 10;
pub const DEFAULT_STALE_WHILE_REVALIDATE_SECONDS: u64 = 60;
pub const DEFAULT_STALE_IF_ERROR_SECONDS: u64 = 300;
pub const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 10;
pub const DEFAULT_CACHE_STATUS_HEADER: &str = "X-Cache";

/// The disk cache. Sizes are bytes, or a number with a unit: `512MiB`,
/// `10GiB`, `2TB`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Folder of the cache; created when missing.
    pub dir: String,
    #[serde(default = "default_cache_max_size")]
    pub max_size: ByteSize,
    /// Default: `DEFAULT_MAX_OBJECT_SIZE`, or `max_size` when that is less.
    #[serde(default)]
    pub max_object_size: Option<ByteSize>,
    #[serde(default = "default_min_free_space")]
    pub min_free_space: ByteSize,
    /// Memory for copies of small hot bodies; 0 keeps none.
    #[serde(default = "default_memory_size")]
    pub memory_size: ByteSize,
    /// Largest body copied into memory (default `DEFAULT_MEMORY_OBJECT_MAX_SIZE`).
    /// Bodies above 64 KiB are copied on their second read from disk (a hot
    /// object), smaller ones on the first.
    #[serde(default)]
    pub memory_object_max_size: Option<ByteSize>,
    /// fsync each object's files as it is committed, so that it outlives a
    /// power loss (purges are fsynced whatever this says).
    #[serde(default)]
    pub durable_commits: bool,
    /// Send disk hits over plain HTTP/1 (whole, or one range) from the
    /// page cache with `sendfile` (nginx's `sendfile on`).
    #[serde(default = "default_true")]
    pub sendfile: bool,
    /// Largest manifest (HLS, DASH) given the request's token; larger ones
    /// are sent as stored.
    #[serde(default = "default_manifest_max_size")]
    pub manifest_max_size: ByteSize,
    #[serde(default = "default_ttl_seconds")]
    pub default_ttl_seconds: u64,
    #[serde(default)]
    pub override_ttl_seconds: Option<u64>,
    #[serde(default = "default_not_found_ttl_seconds")]
    pub not_found_ttl_seconds: u64,
    /// Default: `DEFAULT_STALE_WHILE_REVALIDATE_SECONDS` before S3, 0
    /// before a plain HTTP origin (whose own `stale-while-revalidate` says).
    #[serde(default)]
    pub stale_while_revalidate_seconds: Option<u64>,
    #[serde(default = "default_sie_seconds")]
    pub stale_if_error_seconds: u64,
    #[serde(default = "default_lock_timeout_seconds")]
    pub lock_timeout_seconds: u64,
    #[serde(default = "default_cache_status_header")]
    pub status_header: String,
    /// Objects larger than this are fetched and stored in slices; 0 never
    /// slices. Default: `DEFAULT_SLICE_THRESHOLD` before S3, 0 before a
    /// plain HTTP origin.
    #[serde(default)]
    pub slice_threshold: Option<ByteSize>,
    #[serde(default = "default_slice_size")]
    pub slice_size: ByteSize,
    /// Slices fetched ahead of a range request, in the background.
    #[serde(default = "default_read_ahead_slices")]
    pub read_ahead_slices: u32,
}

fn default_cache_max_size() -> ByteSize {
    ByteSize::parse(DEFAULT_CACHE_MAX_SIZE).unwrap_or(ByteSize(0))
}
/// Default `cache.manifest_max_size`: far above a 10-hour VOD playlist of
/// 2-second segments (about 1.5 MB).
pub const DEFAULT_MANIFEST_MAX_SIZE: &str = "4MiB";

fn default_manifest_max_size() -> ByteSize {
    ByteSize::parse(DEFAULT_MANIFEST_MAX_SIZE).unwrap_or(ByteSize(0))
}
fn default_min_free_space() -> ByteSize {
    ByteSize::parse(DEFAULT_MIN_FREE_SPACE).unwrap_or(ByteSize(0))
}
fn default_memory_size() -> ByteSize {
    ByteSize::parse(DEFAULT_MEMORY_SIZE).unwrap_or(ByteSize(0))
}
fn default_ttl_seconds() -> u64 {
    DEFAULT_TTL_SECONDS
}
fn default_not_found_ttl_seconds() -> u64 {
    DEFAULT_NOT_FOUND_TTL_SECONDS
}
fn default_sie_seconds() -> u64 {
    DEFAULT_STALE_IF_ERROR_SECONDS
}
fn default_lock_timeout_seconds() -> u64 {
    DEFAULT_LOCK_TIMEOUT_SECONDS
}
fn default_slice_size() -> ByteSize {
    ByteSize::parse(DEFAULT_SLICE_SIZE).unwrap_or(ByteSize(0))
}
fn default_read_ahead_slices() -> u32 {
    DEFAULT_READ_AHEAD_SLICES
}
fn default_cache_status_header() -> String {
    DEFAULT_CACHE_STATUS_HEADER.to_string()
}

/// A size in bytes, written as a number or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `1234`, `64KiB`, `512MiB`, `10GiB`, `2TiB`, `1KB` (powers of 1000),
    /// with an optional space before the unit.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a size: write bytes or a number with KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: &[(&str, Option<u64>)] = &[
        ("0", Some(0)),
        ("1234", Some(1234)),
        ("64KiB", Some(65_536)),
        ("512 MiB", Some(512 << 20)),
        ("10GiB", Some(10 << 30)),
        ("2TiB", Some(2 << 40)),
        ("1KB", Some(1_000)),
        ("3GB", Some(3_000_000_000)),
        ("10gib", None),
        ("GiB", None),
        ("-1", None),
        ("1.5GiB", None),
        ("99999999999TiB", None),
    ];

    #[test]
    fn sizes() {
        for (text, want) in SIZES {
            assert_eq!(ByteSize::parse(text).map(|b| b.0), *want, "{text}");
        }
    }
}
