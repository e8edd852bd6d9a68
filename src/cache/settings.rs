//! The validated cache settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cache::policy::Policy;
use crate::config::Problem;
use crate::config::sections::{ByteSize, CacheSection, DEFAULT_MEMORY_OBJECT_MAX_SIZE};

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub dir: PathBuf,
    pub max_size: u64,
    pub max_object_size: u64,
    pub min_free_space: u64,
    /// Memory for copies of hot bodies (0: none).
    pub memory_size: u64,
    /// Largest body copied into memory.
    pub memory_object_max_size: u64,
    /// Commits are fsynced (`cache.durable_commits`).
    pub durable_commits: bool,
    /// Whole disk hits over plain HTTP/1 sent with `sendfile`
    /// (`cache.sendfile`).
    pub sendfile: bool,
    /// Largest manifest given the request's token.
    pub manifest_max_size: u64,
    pub policy: Policy,
    pub lock_timeout: Duration,
    /// Response header naming the cache outcome; `None` when disabled
    /// (configured as an empty string).
    pub status_header: Option<String>,
    /// Slice caching of large objects; `None` when disabled.
    pub slicing: Option<SliceConfig>,
}

/// How large objects are cut into slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceConfig {
    /// Objects with more bytes than this are sliced.
    pub threshold: u64,
    /// Bytes per slice (the last one may be shorter).
    pub size: u64,
    /// Slices fetched ahead in the background after a request.
    pub read_ahead: u32,
}

/// Bounds of `cache.slice_size`.
pub const MIN_SLICE_SIZE: u64 = 64 * 1024;
pub const MAX_SLICE_SIZE: u64 = 64 * 1024 * 1024;
/// Bound of `cache.read_ahead_slices`.
pub const MAX_READ_AHEAD: u32 = 16;

/// Bound of `cache.memory_size`.
pub const MAX_MEMORY_SIZE: u64 = 64 << 30;

/// Longest freshness or stale window accepted, one year.
const MAX_SECONDS: u64 = 365 * 86_400;

impl CacheConfig {
    pub fn from_section(
        section: &CacheSection,
        base_dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<CacheConfig> {
        let before = problems.len();
        if section.dir.is_empty() {
            problems.push(Problem::new(
                "cache.dir",
                "is empty: give the folder the cache lives in, e.g. /var/cache/cdn-node",
            ));
        }
        if section.max_size.0 == 0 {
            problems.push(Problem::new(
                "cache.max_size",
                "is 0: give the disk space the cache may use, e.g. 100GiB",
            ));
        }
        if section.max_object_size.0 == 0 || section.max_object_size.0 > section.max_size.0 {
            problems.push(Problem::new(
                "cache.max_object_size",
                format!(
                    "{} bytes is out of range: use more than 0 and at most cache.max_size ({} bytes)",
                    section.max_object_size.0, section.max_size.0
                ),
            ));
        }
        if section.manifest_max_size.0 == 0 || section.manifest_max_size.0 > 64 << 20 {
            problems.push(Problem::new(
                "cache.manifest_max_size",
                format!(
                    "{} bytes is out of range: use more than 0 and at most 64MiB",
                    section.manifest_max_size.0
                ),
            ));
        }
        for (key, value) in [
            (
                "cache.default_ttl_seconds",
                Some(section.default_ttl_seconds),
            ),
            ("cache.override_ttl_seconds", section.override_ttl_seconds),
            (
                "cache.not_found_ttl_seconds",
                Some(section.not_found_ttl_seconds),
            ),
            (
                "cache.stale_while_revalidate_seconds",
                Some(section.stale_while_revalidate_seconds),
            ),
            (
                "cache.stale_if_error_seconds",
                Some(section.stale_if_error_seconds),
            ),
        ] {
            if let Some(v) = value
                && v > MAX_SECONDS
            {
                problems.push(Problem::new(
                    key,
                    format!("{v} is more than a year: use at most {MAX_SECONDS}"),
                ));
            }
        }
        if section.lock_timeout_seconds == 0 || section.lock_timeout_seconds > 600 {
            problems.push(Problem::new(
                "cache.lock_timeout_seconds",
                format!(
                    "{} is out of range: use 1 to 600 seconds",
                    section.lock_timeout_seconds
                ),
            ));
        }
        if section.memory_size.0 > MAX_MEMORY_SIZE {
            problems.push(Problem::new(
                "cache.memory_size",
                format!(
                    "{} bytes is out of range: use 0 (none) to 64GiB",
                    section.memory_size.0
                ),
            ));
        }
        let memory_object = match section.memory_object_max_size {
            Some(size) => size.0,
            None => ByteSize::parse(DEFAULT_MEMORY_OBJECT_MAX_SIZE).map_or(0, |s| s.0),
        };
        if section.memory_object_max_size.is_some() && memory_object > section.memory_size.0 / 4 {
            problems.push(Problem::new(
                "cache.memory_object_max_size",
                format!(
                    "{memory_object} bytes is more than a quarter of cache.memory_size ({} bytes), \
                     and a copy that large would never be kept: lower it or raise memory_size",
                    section.memory_size.0
                ),
            ));
        }
        let header = section.status_header.trim();
        if !header.is_empty() && http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            problems.push(Problem::new(
                "cache.status_header",
                format!("{header:?} is not a header name: use e.g. X-Cache, or \"\" to send none"),
            ));
        }
        let slice_size = section.slice_size.0;
        if !(MIN_SLICE_SIZE..=MAX_SLICE_SIZE).contains(&slice_size) {
            problems.push(Problem::new(
                "cache.slice_size",
                format!("{slice_size} bytes is out of range: use 64KiB to 64MiB"),
            ));
        }
        let threshold = section.slice_threshold.0;
        if section.read_ahead_slices > MAX_READ_AHEAD {
            problems.push(Problem::new(
                "cache.read_ahead_slices",
                format!(
                    "{} is out of range: use 0 to {MAX_READ_AHEAD}",
                    section.read_ahead_slices
                ),
            ));
        }
        if problems.len() > before {
            return None;
        }
        Some(CacheConfig {
            dir: base_dir.join(&section.dir),
            max_size: section.max_size.0,
            max_object_size: section.max_object_size.0,
            min_free_space: section.min_free_space.0,
            memory_size: section.memory_size.0,
            memory_object_max_size: memory_object,
            durable_commits: section.durable_commits,
            sendfile: section.sendfile,
            manifest_max_size: section.manifest_max_size.0,
            policy: Policy {
                default_ttl: Duration::from_secs(section.default_ttl_seconds),
                override_ttl: section.override_ttl_seconds.map(Duration::from_secs),
                not_found_ttl: Duration::from_secs(section.not_found_ttl_seconds),
                stale_while_revalidate: Duration::from_secs(section.stale_while_revalidate_seconds),
                stale_if_error: Duration::from_secs(section.stale_if_error_seconds),
            },
            lock_timeout: Duration::from_secs(section.lock_timeout_seconds),
            status_header: (!header.is_empty()).then(|| header.to_string()),
            slicing: (threshold != 0).then_some(SliceConfig {
                threshold,
                // A slice is one stored object: never above the object bound.
                size: slice_size.min(section.max_object_size.0),
                read_ahead: section.read_ahead_slices,
            }),
        })
    }
}
