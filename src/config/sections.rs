//! The YAML shape of our own configuration sections. Every section rejects
//! unknown keys; defaults are named constants so the reference in the README
//! and the code agree.

use serde::Deserialize;

pub const DEFAULT_THREADS: usize = 2;
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
    pub http: Vec<String>,
}

/// The operators' listener: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub listen: String,
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

/// The S3 bucket behind the node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSection {
    /// `http://host[:port]` or `https://host[:port]`, no path.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default = "default_addressing")]
    pub addressing: Addressing,
    pub credentials: CredentialsSection,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    #[serde(default = "default_resolve_interval_seconds")]
    pub resolve_interval_seconds: u64,
    /// Client query parameters passed to S3 and kept in the cache key.
    #[serde(default)]
    pub forward_query: Vec<String>,
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
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            access_stdout: true,
        }
    }
}

fn default_true() -> bool {
    true
}
