//! The validated cache settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cache::policy::Policy;
use crate::config::Problem;
use crate::config::sections::{
    ByteSize, CacheSection, DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MEMORY_OBJECT_MAX_SIZE,
    DEFAULT_SLICE_THRESHOLD, DEFAULT_STALE_WHILE_REVALIDATE_SECONDS, OriginKind,
};

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

/// A default size written in the section's constants.
fn parse_default(text: &str) -> u64 {
    ByteSize::parse(text).map_or(0, |s| s.0)
}

/// Longest freshness or stale window accepted, one year.
const MAX_SECONDS: u64 = 365 * 86_400;

impl CacheConfig {
    /// The settings of `section` in front of an origin of `origin_kind`,
    /// which chooses two defaults: a plain HTTP origin's answers are cached
    /// as RFC 9111 says, so nothing stale is served while revalidating
    /// unless it allows it, and objects are fetched whole (a slice fetch is
    /// shared by every client and carries none of one client's fields).
    pub fn from_section(
        section: &CacheSection,
        origin_kind: OriginKind,
        base_dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<CacheConfig> {
        let before = problems.len();
        let plain_origin = origin_kind == OriginKind::Http;
        let max_object_size = section.max_object_size.map_or_else(
            || parse_default(DEFAULT_MAX_OBJECT_SIZE).min(section.max_size.0),
            |s| s.0,
        );
        let stale_while_revalidate_seconds =
            section
                .stale_while_revalidate_seconds
                .unwrap_or(if plain_origin {
                    0
                } else {
                    DEFAULT_STALE_WHILE_REVALIDATE_SECONDS
                });
        let threshold = section.slice_threshold.map_or_else(
            || {
                if plain_origin {
                    0
                } else {
                    parse_default(DEFAULT_SLICE_THRESHOLD)
                }
            },
            |s| s.0,
        );
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
        if max_object_size == 0 || max_object_size > section.max_size.0 {
            problems.push(Problem::new(
                "cache.max_object_size",
                format!(
                    "{max_object_size} bytes is out of range: use more than 0 and at most cache.max_size ({} bytes)",
                    section.max_size.0
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
                Some(stale_while_revalidate_seconds),
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
        let memory_object = section
            .memory_object_max_size
            .map_or_else(|| parse_default(DEFAULT_MEMORY_OBJECT_MAX_SIZE), |s| s.0);
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
            max_object_size,
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
                stale_while_revalidate: Duration::from_secs(stale_while_revalidate_seconds),
                stale_if_error: Duration::from_secs(section.stale_if_error_seconds),
                plain_origin,
            },
            lock_timeout: Duration::from_secs(section.lock_timeout_seconds),
            status_header: (!header.is_empty()).then(|| header.to_string()),
            slicing: (threshold != 0).then_some(SliceConfig {
                threshold,
                // A slice is one stored object: never above the object bound.
                size: slice_size.min(max_object_size),
                read_ahead: section.read_ahead_slices,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (cache section, origin kind, max_object_size, stale-while-revalidate
    /// seconds, slice threshold or none)
    type Case = (&'static str, OriginKind, u64, u64, Option<u64>);

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    const CASES: &[Case] = &[
        // Before S3: a bucket sends no caching fields at all.
        ("dir: c", OriginKind::S3, 8 * GIB, 60, Some(64 * MIB)),
        // Before a plain origin, RFC 9111's: nothing stale without its leave,
        // objects fetched whole.
        ("dir: c", OriginKind::Http, 8 * GIB, 0, None),
        // What is written wins, either way.
        (
            "dir: c\nstale_while_revalidate_seconds: 30\nslice_threshold: 1MiB",
            OriginKind::Http,
            8 * GIB,
            30,
            Some(MIB),
        ),
        (
            "dir: c\nstale_while_revalidate_seconds: 0\nslice_threshold: 0",
            OriginKind::S3,
            8 * GIB,
            0,
            None,
        ),
        // An unwritten object bound follows a smaller cache.
        (
            "dir: c\nmax_size: 1GiB",
            OriginKind::S3,
            GIB,
            60,
            Some(64 * MIB),
        ),
        (
            "dir: c\nmax_size: 1GiB\nmax_object_size: 100MiB",
            OriginKind::S3,
            100 * MIB,
            60,
            Some(64 * MIB),
        ),
    ];

    #[test]
    fn defaults_follow_the_origin_kind_and_the_cache_size() {
        for (yaml, kind, max_object, swr, threshold) in CASES {
            let section: CacheSection = serde_yaml::from_str(yaml).expect(yaml);
            let mut problems = Vec::new();
            let config = CacheConfig::from_section(&section, *kind, Path::new("."), &mut problems)
                .unwrap_or_else(|| panic!("{yaml}: {problems:?}"));
            assert_eq!(config.max_object_size, *max_object, "{yaml} {kind:?}");
            assert_eq!(
                config.policy.stale_while_revalidate,
                Duration::from_secs(*swr),
                "{yaml} {kind:?}"
            );
            assert_eq!(
                config.slicing.map(|s| s.threshold),
                *threshold,
                "{yaml} {kind:?}"
            );
            assert_eq!(config.policy.plain_origin, *kind == OriginKind::Http);
        }
    }

    #[test]
    fn an_object_bound_above_the_cache_names_both() {
        let section: CacheSection =
            serde_yaml::from_str("dir: c\nmax_size: 1GiB\nmax_object_size: 2GiB").unwrap();
        let mut problems = Vec::new();
        assert!(
            CacheConfig::from_section(&section, OriginKind::S3, Path::new("."), &mut problems)
                .is_none()
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "cache.max_object_size");
        assert!(
            problems[0].message.contains("cache.max_size"),
            "{}",
            problems[0]
        );
    }
}
