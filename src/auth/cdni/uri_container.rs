//! `cdniuc`, the URI container (`hash:` or `regex:`), and the request URI it is matched
//! against.
//!
//! # The request URI
//!
//! `cdniuc` is matched against `SCHEME://HOST/CANONICAL-PATH`, followed by
//! `?CANONICAL-QUERY` when the canonical query is not empty:
//! - `SCHEME` is `auth.uri_scheme` (`http` by default);
//! - `HOST` is the `Host` header (or the request target's authority), lowercased, without
//!   the scheme's default port (`:80` for http, `:443` for https);
//! - `CANONICAL-PATH` is the path the cache keys on and S3 is asked for (every byte but
//!   `A-Z a-z 0-9 - . _ ~` and `/` written `%XX` in uppercase, dot segments refused);
//! - `CANONICAL-QUERY` holds only the parameters passed to S3 (`origin.forward_query`),
//!   sorted and encoded the same way; token parameters never take part.
//!
//! So `http://cdn.example/courses/101/intro%20video.mp4` is the URI of a request for
//! `/courses/101/intro video.mp4` with `Host: CDN.example:80`. A `hash:` container holds the
//! unpadded base64url SHA-256 of exactly that string. A `regex:` container is matched fully
//! anchored (as if written `^(?:...)$`) with the `regex` crate's syntax (no look-around or
//! back-references); its compiled size is bounded.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::{Regex, RegexBuilder};

use crate::auth::reject::Reject;

/// Bound on a `regex:` container's compiled program, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A `cdniuc` container.
#[derive(Debug, Clone)]
pub(crate) enum UriContainer {
    /// SHA-256 of the request URI.
    Hash([u8; 32]),
    /// Fully anchored.
    Regex(Regex),
}

impl PartialEq for UriContainer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (UriContainer::Hash(a), UriContainer::Hash(b)) => a == b,
            (UriContainer::Regex(a), UriContainer::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl UriContainer {
    pub(super) fn parse(text: &str) -> Result<UriContainer, Reject> {
        let Some((kind, data)) = text.split_once(':') else {
            return Err(Reject::UnsupportedUriContainer);
        };
        match kind {
            "hash" => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(data)
                    .map_err(|_| Reject::Malformed)?;
                let hash: [u8; 32] = bytes.try_into().map_err(|_| Reject::Malformed)?;
                Ok(UriContainer::Hash(hash))
            }
            "regex" => {
                // Compiled alone first: a pattern that compiles has balanced groups, so
                // wrapping it cannot undo the anchors (`a)|(b` would).
                build_regex(data)?;
                Ok(UriContainer::Regex(build_regex(&format!("^(?:{data})$"))?))
            }
            _ => Err(Reject::UnsupportedUriContainer),
        }
    }

    pub fn matches(&self, uri: &str) -> bool {
        match self {
            UriContainer::Hash(want) => {
                digest::digest(&digest::SHA256, uri.as_bytes()).as_ref() == want.as_slice()
            }
            UriContainer::Regex(regex) => regex.is_match(uri),
        }
    }
}

fn build_regex(pattern: &str) -> Result<Regex, Reject> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|_| Reject::Malformed)
}

/// The URI `cdniuc` is matched against (see the module documentation); `None` when `host`
/// is absent, empty or not a plain `host[:port]`.
pub(crate) fn request_uri(
    scheme: &str,
    host: Option<&str>,
    path: &str,
    query: &str,
) -> Option<String> {
    let host = host?.trim();
    let usable = |b: u8| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b);
    if host.is_empty() || !host.bytes().all(usable) {
        return None;
    }
    let mut host = host.to_ascii_lowercase();
    let default_port = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    if host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    let mut uri = format!("{scheme}://{host}{path}");
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(query);
    }
    Some(uri)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::cdni::tests::{hash_of, read};

    #[test]
    fn uri_container_table() {
        let uri = "http://cdn.example/courses/101/hls/seg-1.ts";
        let cases: Vec<(String, &str, bool)> = vec![
            (format!("hash:{}", hash_of(uri)), uri, true),
            (
                format!("hash:{}", hash_of(uri)),
                "http://cdn.example/courses/101/hls/seg-2.ts",
                false,
            ),
            (
                format!("hash:{}", hash_of(uri)),
                "https://cdn.example/courses/101/hls/seg-1.ts",
                false,
            ),
            (
                "regex:http://cdn\\.example/courses/101/.*".into(),
                uri,
                true,
            ),
            (
                "regex:http://cdn\\.example/courses/101/.*".into(),
                "http://cdn.example/courses/1011/v.mp4",
                false,
            ),
            // Fully anchored: a pattern for the folder name alone opens nothing below it,
            // and neither a prefix nor a suffix of a longer URI.
            (
                "regex:http://cdn\\.example/courses/101".into(),
                "http://cdn.example/courses/1011/v.mp4",
                false,
            ),
            (
                "regex:http://cdn\\.example/courses/101".into(),
                "http://cdn.example/courses/101",
                true,
            ),
            ("regex:/courses/101/.*".into(), uri, false),
            ("regex:.*/courses/101/.*".into(), uri, true),
            (
                "regex:.*/courses/101/.*".into(),
                "http://cdn.example/x?a=/courses/101/",
                true,
            ),
            (
                "regex:[^?]*/courses/101/[^?]*".into(),
                "http://cdn.example/x?a=/courses/101/",
                false,
            ),
            ("regex:a|b".into(), "a", true),
            ("regex:a|b".into(), "ab", false),
            ("regex:a|b".into(), "xb", false),
            (
                "regex:https?://[^/]+/courses/(101|202)/.*\\.ts".into(),
                uri,
                true,
            ),
            ("regex:(?m)http.*".into(), "http://x\nfoo", false),
        ];
        for (container, uri, want) in cases {
            let cdni = read(json!({"cdniuc": container})).expect("readable");
            let got = cdni.check(None, || Some(uri.to_owned()));
            let want = if want {
                Ok(())
            } else {
                Err(Reject::UriMismatch)
            };
            assert_eq!(got, want, "{container} on {uri}");
        }
        let cdni = read(json!({"cdniuc": "regex:.*"})).expect("readable");
        assert_eq!(
            cdni.check(None, || None),
            Err(Reject::UriMismatch),
            "no host"
        );
        let bad: Vec<(Value, Reject)> = vec![
            (json!("regex:a)|(b"), Reject::Malformed),
            (json!("regex:("), Reject::Malformed),
            (json!("regex:\\1"), Reject::Malformed),
            (json!("regex:(?=a)"), Reject::Malformed),
            (json!("regex:(a{1000}){1000}"), Reject::Malformed),
            (json!("hash:"), Reject::Malformed),
            (json!("hash:AAAA"), Reject::Malformed),
            (json!(format!("hash:{}=", hash_of(uri))), Reject::Malformed),
            (json!("hash:not+base64/url"), Reject::Malformed),
            (
                json!("uri:http://cdn.example/"),
                Reject::UnsupportedUriContainer,
            ),
            (json!("Regex:.*"), Reject::UnsupportedUriContainer),
            (
                json!("http://cdn.example/a"),
                Reject::UnsupportedUriContainer,
            ),
            (json!("no container"), Reject::UnsupportedUriContainer),
            (json!(7), Reject::Malformed),
            (json!(["regex:.*"]), Reject::Malformed),
        ];
        for (value, want) in bad {
            assert_eq!(
                read(json!({"cdniuc": value})).map(|_| ()),
                Err(want),
                "{value}"
            );
        }
        assert!(Reject::UriMismatch.is_forbidden());
        assert!(!Reject::UnsupportedUriContainer.is_forbidden());
    }

    /// Scheme, host, path, query, and the URI wanted.
    type UriCase = (
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
        Option<&'static str>,
    );

    #[test]
    fn request_uri_table() {
        let cases: &[UriCase] = &[
            (
                "http",
                Some("cdn.example"),
                "/a/b.ts",
                "",
                Some("http://cdn.example/a/b.ts"),
            ),
            (
                "http",
                Some("CDN.Example:80"),
                "/a",
                "",
                Some("http://cdn.example/a"),
            ),
            (
                "http",
                Some("127.0.0.1:8080"),
                "/a",
                "v=2",
                Some("http://127.0.0.1:8080/a?v=2"),
            ),
            (
                "https",
                Some("cdn.example:443"),
                "/a",
                "",
                Some("https://cdn.example/a"),
            ),
            (
                "https",
                Some("cdn.example:80"),
                "/a",
                "",
                Some("https://cdn.example:80/a"),
            ),
            (
                "http",
                Some("[2001:db8::1]:80"),
                "/a",
                "",
                Some("http://[2001:db8::1]/a"),
            ),
            ("http", None, "/a", "", None),
            ("http", Some(""), "/a", "", None),
            ("http", Some("evil.example/x"), "/a", "", None),
            ("http", Some("a@b"), "/a", "", None),
            ("http", Some("a b"), "/a", "", None),
        ];
        for (scheme, host, path, query, want) in cases {
            assert_eq!(
                request_uri(scheme, *host, path, query).as_deref(),
                *want,
                "{scheme} {host:?} {path} {query}"
            );
        }
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// Request URIs as `request_uri` builds them.
        fn uri() -> impl Strategy<Value = String> {
            (
                "[a-z0-9.-]{1,12}",
                "(/[A-Za-z0-9._~%-]{1,8}){1,4}",
                "([a-z]{1,4}=[A-Za-z0-9%]{0,6})?",
            )
                .prop_map(|(host, path, query)| {
                    request_uri("http", Some(&host), &path, &query).unwrap_or_default()
                })
        }

        proptest! {
            /// Any claim text: a container or a refusal, never a panic.
            #[test]
            fn any_container_text_is_read_or_refused(
                text in prop_oneof![
                    ".{0,40}",
                    "(hash|regex|uri):.{0,40}",
                    "regex:[()|*+?{},.^$\\\\a-z0-9\\[\\]]{0,30}",
                ],
                uri in uri(),
            ) {
                match UriContainer::parse(&text) {
                    Ok(container) => {
                        let _ = container.matches(&uri);
                    }
                    Err(e) => prop_assert!(
                        matches!(e, Reject::Malformed | Reject::UnsupportedUriContainer),
                        "{:?}", e
                    ),
                }
            }

            /// `hash:` of a URI matches that URI and no other.
            #[test]
            fn a_hash_matches_its_uri_alone(uri in uri(), other in uri()) {
                let hash = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, uri.as_bytes()));
                let container = UriContainer::parse(&format!("hash:{hash}")).expect("a hash");
                prop_assert!(container.matches(&uri));
                prop_assert_eq!(container.matches(&other), other == uri);
            }

            /// `regex:` spelling a URI out matches it whole: neither a longer URI nor a
            /// part of it.
            #[test]
            fn a_regex_is_anchored(uri in uri(), extra in "[a-z/?=]{1,4}") {
                let container = UriContainer::parse(&format!("regex:{}", regex::escape(&uri)))
                    .expect("an escaped URI compiles");
                prop_assert!(container.matches(&uri));
                let longer = format!("{uri}{extra}");
                prop_assert!(!container.matches(&longer));
                let longer = format!("{extra}{uri}");
                prop_assert!(!container.matches(&longer));
                prop_assert!(!container.matches(&uri[..uri.len() - 1]));
            }
        }
    }
}
