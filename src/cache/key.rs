//! The cache keys: a request's key is its canonical path and canonical
//! query; a sliced object's slices and record have keys derived from it
//! ([`slice`]).
//!
//! Both parts come from [`crate::request`]: the path from
//! [`crate::request::path::canonicalize`] and the query from
//! [`crate::request::query::canonical`] with the allow-list of parameters that
//! change the object (never the token).

pub mod slice;

use pingora_cache::CacheKey;
use pingora_cache::key::CacheHashKey;

/// The cache key of a canonical path and query: the same function the
/// request path and a purge use, so a purge finds what a request stored.
pub fn object(canonical_path: &str, canonical_query: &str) -> CacheKey {
    hashed(cache_key(canonical_path, canonical_query))
}

/// The `CacheKey` of `primary`, its hash computed once here. A plain key
/// hashes its primary (blake2b) on every ask, and a hit asks several times
/// (the store's lookup, the compact key for the eviction manager, ...). The
/// override is that very hash, so every ask answers the same.
pub fn hashed(primary: String) -> CacheKey {
    let mut key = CacheKey::new(primary, "");
    key.set_primary_bin_override(key.primary_bin());
    key
}

/// `canonical_path`, followed by `?canonical_query` when the query is not
/// empty.
pub fn cache_key(canonical_path: &str, canonical_query: &str) -> String {
    if canonical_query.is_empty() {
        canonical_path.to_owned()
    } else {
        let mut key = String::with_capacity(canonical_path.len() + 1 + canonical_query.len());
        key.push_str(canonical_path);
        key.push('?');
        key.push_str(canonical_query);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{path, query};

    /// Parameters that select a different object; everything else (the
    /// token in particular) is dropped from the key.
    fn allowed(name: &str) -> bool {
        matches!(name, "partNumber" | "versionId")
    }

    /// The key a request target (`path?query`) gets.
    fn key_of(target: &str) -> String {
        let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let canonical_path = path::canonicalize(raw_path).expect("valid path");
        let pairs = query::parse(raw_query).expect("valid query");
        cache_key(&canonical_path, &query::canonical(&pairs, allowed))
    }

    const CASES: &[(&str, &str, &str)] = &[
        ("/v/a.mp4", "", "/v/a.mp4"),
        ("/v/a.mp4", "partNumber=1", "/v/a.mp4?partNumber=1"),
        ("/", "", "/"),
        ("/v/", "versionId=x", "/v/?versionId=x"),
    ];

    #[test]
    fn joins_path_and_query() {
        for (p, q, want) in CASES {
            assert_eq!(cache_key(p, q), *want, "path {p:?} query {q:?}");
        }
    }

    /// Request targets that name the same cached object.
    const SAME: &[(&str, &str)] = &[
        // different tokens
        ("/v/a.mp4?token=aaa", "/v/a.mp4?token=bbb"),
        ("/v/a.mp4?token=aaa", "/v/a.mp4"),
        // token in different places
        (
            "/v/a.mp4?token=t&partNumber=2",
            "/v/a.mp4?partNumber=2&token=t",
        ),
        (
            "/v/a.mp4?a=1&token=t&partNumber=2",
            "/v/a.mp4?partNumber=2&b=3",
        ),
        // params in different order
        (
            "/v/a.mp4?versionId=v1&partNumber=2",
            "/v/a.mp4?partNumber=2&versionId=v1",
        ),
        // encoding differences
        ("/v/%7Euser/a.mp4", "/v/~user/a.mp4"),
        ("/v/%7euser/a.mp4", "/v/~user/a.mp4"),
        ("/v/a%2amp4", "/v/a%2Amp4"),
        ("/v/a*mp4", "/v/a%2Amp4"),
        ("/v/%61.mp4", "/v/a.mp4"),
        ("/v/vidéo.mp4", "/v/vid%c3%a9o.mp4"),
        ("/v/a.mp4?versionId=%7E1", "/v/a.mp4?versionId=~1"),
        ("/v/a.mp4?versionId=a+b", "/v/a.mp4?versionId=a%20b"),
        // empty pairs and forbidden overrides
        ("/v/a.mp4?&&partNumber=1&", "/v/a.mp4?partNumber=1"),
        (
            "/v/a.mp4?response-content-type=text/html&partNumber=1",
            "/v/a.mp4?partNumber=1",
        ),
        ("/v/a.mp4?X-Amz-Signature=abc", "/v/a.mp4"),
        ("/v/a.mp4?", "/v/a.mp4"),
    ];

    #[test]
    fn same_object_same_key() {
        for (a, b) in SAME {
            assert_eq!(key_of(a), key_of(b), "{a:?} vs {b:?}");
        }
    }

    /// Request targets that must never share a cache entry.
    const DIFFERENT: &[(&str, &str)] = &[
        ("/v/a.mp4?partNumber=1", "/v/a.mp4?partNumber=2"),
        ("/v/a.mp4?partNumber=1", "/v/a.mp4"),
        ("/v/a.mp4?versionId=v1", "/v/a.mp4?versionId=v2"),
        ("/v/a.mp4?versionId=v1", "/v/a.mp4?partNumber=v1"),
        ("/v/a.mp4?versionId=a%2Bb", "/v/a.mp4?versionId=a+b"),
        ("/v/a.mp4", "/v/b.mp4"),
        ("/v/a.mp4", "/V/a.mp4"),
        ("/v/a.mp4", "/v/a.mp4/"),
        ("/v/a+b.mp4", "/v/a%20b.mp4"),
        ("/v/a.mp4", "/w/v/a.mp4"),
        // a query cannot forge a different path
        ("/v/a.mp4%3FpartNumber=1", "/v/a.mp4?partNumber=1"),
    ];

    #[test]
    fn different_objects_different_keys() {
        for (a, b) in DIFFERENT {
            assert_ne!(key_of(a), key_of(b), "{a:?} vs {b:?}");
        }
    }

    /// A hashed key is the plain key to everything that asks it.
    #[test]
    fn a_hashed_key_hashes_as_a_plain_one() {
        for primary in ["/v/a.mp4", "/v/a.mp4?partNumber=1", "/", "/v/a.mp4 #info"] {
            let plain = CacheKey::new(primary, "");
            let hashed = hashed(primary.to_owned());
            assert_eq!(hashed.primary_bin(), plain.primary_bin(), "{primary}");
            assert_eq!(hashed.combined_bin(), plain.combined_bin(), "{primary}");
            assert_eq!(hashed.combined(), plain.combined(), "{primary}");
            assert_eq!(hashed.to_compact(), plain.to_compact(), "{primary}");
            assert_eq!(hashed.primary_key(), plain.primary_key(), "{primary}");
            assert_eq!(hashed.user_tag, plain.user_tag);
        }
        assert_eq!(
            object("/v/a.mp4", "partNumber=1").primary_bin(),
            CacheKey::new("/v/a.mp4?partNumber=1", "").primary_bin()
        );
    }
}
