//! RFC 9246 (CDNI URI Signing) claims: read once when a token is verified, checked against
//! every request.
//!
//! - `cdniv`: the claim set version; absent means 1, and only 1 is accepted.
//! - `cdnicrit`: claim names the node must understand; one it does not gives
//!   `unknown_critical`.
//! - `cdniip`: an address or CIDR block the client's address (see
//!   [`crate::auth::client_addr`]) must be in; else 403 `address_mismatch`.
//! - `cdniuc`: a URI container, `hash:` or `regex:`, matched against the request URI (see
//!   [`request_uri`]); else 403 `uri_mismatch`. Other container types are refused (401
//!   `malformed`: another token would help).
//! - `cdniets` with `cdnistt` (and `cdnistd`): signed token renewal, see
//!   [`crate::auth::renewal`].
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

use std::net::IpAddr;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::auth::client_addr::Cidr;
use crate::auth::reject::Reject;

/// The only claim set version there is.
pub const CLAIM_SET_VERSION: u64 = 1;
/// Bound on a `regex:` container's compiled program, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Largest accepted `cdnistd`.
pub const MAX_SIGNED_TOKEN_DEPTH: u64 = 64;

/// Claims the node always implements, for `cdnicrit` (`iss` and `aud` only when it checks
/// them).
const UNDERSTOOD: [&str; 9] = [
    "sub", "exp", "nbf", "iat", "jti", "cdniv", "cdnicrit", "cdniip", "cdniuc",
];
/// Claims the node implements only when it can sign renewed tokens.
const RENEWAL_CLAIMS: [&str; 3] = ["cdniets", "cdnistt", "cdnistd"];

/// What the configuration changes in how the claims are read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CdniPolicy<'a> {
    /// `auth.scope_claim`, understood when configured.
    pub scope_claim: Option<&'a str>,
    /// A renewal key is configured: `cdniets`, `cdnistt`, `cdnistd` are honoured.
    pub renews: bool,
    /// An issuer is required (`auth.issuer` or the key's): `iss` is checked.
    pub checks_issuer: bool,
    /// `auth.audience` is set: `aud` is checked.
    pub checks_audience: bool,
    /// `auth.max_lifetime_seconds`: a longer `cdniets` would give refused tokens.
    pub max_lifetime: u64,
}

/// The CDNI claims of one verified token.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cdni {
    pub ip: Option<Cidr>,
    pub uri: Option<UriContainer>,
    pub renewal: Option<RenewalAsk>,
}

/// How a renewed token travels back to the client (`cdnistt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 1: a `Set-Cookie` named after the first `cookie:` token source.
    Cookie,
    /// 2: the `auth.renewal_header` response header.
    Header,
}

/// What a token asks of renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RenewalAsk {
    /// `cdniets`: the renewed token's `exp` is now plus this.
    pub ets: u64,
    pub transport: Transport,
    /// `cdnistd`: how many leading path segments the cookie's `Path` keeps (0: `/`).
    pub depth: u64,
}

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
    fn parse(text: &str) -> Result<UriContainer, Reject> {
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

impl Cdni {
    /// Reads the CDNI claims of verified `claims`. Order: version, critical claims, then
    /// the rest, so a token of another version or with a claim the node cannot honour is
    /// refused for that reason and not for one of its claims' shape.
    pub fn read(claims: &Map<String, Value>, policy: &CdniPolicy<'_>) -> Result<Cdni, Reject> {
        match claims.get("cdniv") {
            None => {}
            Some(v) if v.as_u64() == Some(CLAIM_SET_VERSION) => {}
            Some(_) => return Err(Reject::UnsupportedVersion),
        }
        if let Some(crit) = claims.get("cdnicrit") {
            check_critical(crit, policy)?;
        }
        let ip = match claims.get("cdniip") {
            None => None,
            Some(Value::String(text)) => Some(Cidr::parse(text).ok_or(Reject::Malformed)?),
            Some(_) => return Err(Reject::Malformed),
        };
        let uri = match claims.get("cdniuc") {
            None => None,
            Some(Value::String(text)) => Some(UriContainer::parse(text)?),
            Some(_) => return Err(Reject::Malformed),
        };
        let renewal = read_renewal(claims, policy)?;
        Ok(Cdni { ip, uri, renewal })
    }

    /// The checks against one request: `cdniip` then `cdniuc`. `uri` is only built when
    /// the token carries `cdniuc`; `None` (no usable host) never matches.
    pub fn check(
        &self,
        client: Option<IpAddr>,
        uri: impl FnOnce() -> Option<String>,
    ) -> Result<(), Reject> {
        if let Some(block) = &self.ip
            && !client.is_some_and(|ip| block.contains(ip))
        {
            return Err(Reject::AddressMismatch);
        }
        if let Some(container) = &self.uri
            && !uri().is_some_and(|uri| container.matches(&uri))
        {
            return Err(Reject::UriMismatch);
        }
        Ok(())
    }
}

/// `cdnicrit`: a non-empty array of claim names, each one the node implements.
fn check_critical(value: &Value, policy: &CdniPolicy<'_>) -> Result<(), Reject> {
    let Value::Array(names) = value else {
        return Err(Reject::Malformed);
    };
    if names.is_empty() {
        return Err(Reject::Malformed);
    }
    for name in names {
        let name = name.as_str().ok_or(Reject::Malformed)?;
        let understood = UNDERSTOOD.contains(&name)
            || policy.scope_claim == Some(name)
            || (policy.checks_issuer && name == "iss")
            || (policy.checks_audience && name == "aud")
            || (policy.renews && RENEWAL_CLAIMS.contains(&name));
        if !understood {
            return Err(Reject::UnknownCritical);
        }
    }
    Ok(())
}

/// `cdniets` and `cdnistt` come together; `cdnistd` is optional. Read (and their shape
/// checked) whether or not the node renews.
fn read_renewal(
    claims: &Map<String, Value>,
    policy: &CdniPolicy<'_>,
) -> Result<Option<RenewalAsk>, Reject> {
    let ets = claims.get("cdniets");
    let stt = claims.get("cdnistt");
    let (ets, stt) = match (ets, stt) {
        (None, None) => {
            return match claims.get("cdnistd") {
                None => Ok(None),
                Some(_) => Err(Reject::Malformed),
            };
        }
        (Some(ets), Some(stt)) => (ets, stt),
        _ => return Err(Reject::Malformed),
    };
    let ets = match ets.as_u64() {
        Some(0) | None => return Err(Reject::Malformed),
        Some(secs) if secs > policy.max_lifetime => return Err(Reject::Lifetime),
        Some(secs) => secs,
    };
    let transport = match stt.as_u64() {
        Some(1) => Transport::Cookie,
        Some(2) => Transport::Header,
        _ => return Err(Reject::Malformed),
    };
    let depth = match claims.get("cdnistd") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(d) if d <= MAX_SIGNED_TOKEN_DEPTH => d,
            _ => return Err(Reject::Malformed),
        },
    };
    Ok(Some(RenewalAsk {
        ets,
        transport,
        depth,
    }))
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

/// The cookie `Path` for a renewed token: the first `depth` segments of the directory of
/// `canonical_path`, with a trailing `/` (`/` for 0).
pub(crate) fn cookie_path(canonical_path: &str, depth: u64) -> String {
    let dirs: Vec<&str> = match canonical_path.rsplit_once('/') {
        Some((dir, _)) => dir.split('/').filter(|s| !s.is_empty()).collect(),
        None => Vec::new(),
    };
    let keep = usize::try_from(depth).unwrap_or(usize::MAX).min(dirs.len());
    let mut out = String::from("/");
    for segment in &dirs[..keep] {
        out.push_str(segment);
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: CdniPolicy<'static> = CdniPolicy {
        scope_claim: Some("paths"),
        renews: true,
        checks_issuer: true,
        checks_audience: true,
        max_lifetime: 86_400,
    };

    fn read(claims: Value) -> Result<Cdni, Reject> {
        read_with(claims, &POLICY)
    }

    fn read_with(claims: Value, policy: &CdniPolicy<'_>) -> Result<Cdni, Reject> {
        match claims {
            Value::Object(map) => Cdni::read(&map, policy),
            _ => panic!("claims are an object"),
        }
    }

    fn hash_of(uri: &str) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, uri.as_bytes()).as_ref())
    }

    #[test]
    fn version_table() {
        let cases = [
            (json!({}), Ok(())),
            (json!({"cdniv": 1}), Ok(())),
            (json!({"cdniv": 2}), Err(Reject::UnsupportedVersion)),
            (json!({"cdniv": 0}), Err(Reject::UnsupportedVersion)),
            (json!({"cdniv": -1}), Err(Reject::UnsupportedVersion)),
            (json!({"cdniv": 1.5}), Err(Reject::UnsupportedVersion)),
            (json!({"cdniv": "1"}), Err(Reject::UnsupportedVersion)),
            (json!({"cdniv": null}), Err(Reject::UnsupportedVersion)),
        ];
        for (claims, want) in cases {
            assert_eq!(read(claims.clone()).map(|_| ()), want, "{claims}");
        }
        assert_eq!(Reject::UnsupportedVersion.reason(), "malformed");
    }

    #[test]
    fn critical_table() {
        let no_renewal = CdniPolicy {
            scope_claim: None,
            renews: false,
            checks_issuer: false,
            checks_audience: false,
            ..POLICY
        };
        let cases: Vec<(Value, &CdniPolicy<'_>, Result<(), Reject>)> = vec![
            (json!({"cdnicrit": ["exp", "cdniuc"]}), &POLICY, Ok(())),
            (
                json!({"cdnicrit": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "cdniv",
                                    "cdnicrit", "cdniip", "cdniuc"]}),
                &POLICY,
                Ok(()),
            ),
            (
                json!({"cdnicrit": ["sub", "exp", "nbf", "iat", "jti", "cdniv", "cdnicrit",
                                    "cdniip", "cdniuc"]}),
                &no_renewal,
                Ok(()),
            ),
            // Without a configured issuer or audience the node does not check them.
            (
                json!({"cdnicrit": ["aud"]}),
                &no_renewal,
                Err(Reject::UnknownCritical),
            ),
            (
                json!({"cdnicrit": ["iss"]}),
                &no_renewal,
                Err(Reject::UnknownCritical),
            ),
            (json!({"cdnicrit": ["paths"]}), &POLICY, Ok(())),
            (
                json!({"cdnicrit": ["paths"]}),
                &no_renewal,
                Err(Reject::UnknownCritical),
            ),
            (
                json!({"cdnicrit": ["cdniets", "cdnistt", "cdnistd"]}),
                &POLICY,
                Ok(()),
            ),
            (
                json!({"cdnicrit": ["cdniets"]}),
                &no_renewal,
                Err(Reject::UnknownCritical),
            ),
            (
                json!({"cdnicrit": ["exp", "geo"]}),
                &POLICY,
                Err(Reject::UnknownCritical),
            ),
            (
                json!({"cdnicrit": ["EXP"]}),
                &POLICY,
                Err(Reject::UnknownCritical),
            ),
            (json!({"cdnicrit": []}), &POLICY, Err(Reject::Malformed)),
            (json!({"cdnicrit": "exp"}), &POLICY, Err(Reject::Malformed)),
            (json!({"cdnicrit": [7]}), &POLICY, Err(Reject::Malformed)),
            // The version is read first.
            (
                json!({"cdniv": 2, "cdnicrit": ["geo"]}),
                &POLICY,
                Err(Reject::UnsupportedVersion),
            ),
            // An unknown critical claim wins over a badly shaped other claim.
            (
                json!({"cdnicrit": ["geo"], "cdniip": 7}),
                &POLICY,
                Err(Reject::UnknownCritical),
            ),
        ];
        for (claims, policy, want) in cases {
            assert_eq!(
                read_with(claims.clone(), policy).map(|_| ()),
                want,
                "{claims}"
            );
        }
        assert_eq!(Reject::UnknownCritical.reason(), "unknown_critical");
        assert!(!Reject::UnknownCritical.is_forbidden());
    }

    #[test]
    fn address_table() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("test address"));
        let cases: Vec<(Value, Option<IpAddr>, Result<(), Reject>)> = vec![
            (json!({}), None, Ok(())),
            (json!({"cdniip": "127.0.0.1"}), ip("127.0.0.1"), Ok(())),
            (
                json!({"cdniip": "127.0.0.1"}),
                ip("::ffff:127.0.0.1"),
                Ok(()),
            ),
            (
                json!({"cdniip": "127.0.0.1"}),
                ip("127.0.0.2"),
                Err(Reject::AddressMismatch),
            ),
            (
                json!({"cdniip": "127.0.0.1"}),
                None,
                Err(Reject::AddressMismatch),
            ),
            (
                json!({"cdniip": "198.51.100.0/24"}),
                ip("198.51.100.77"),
                Ok(()),
            ),
            (
                json!({"cdniip": "198.51.100.0/24"}),
                ip("198.51.101.1"),
                Err(Reject::AddressMismatch),
            ),
            (
                json!({"cdniip": "2001:db8::/32"}),
                ip("2001:db8:1::5"),
                Ok(()),
            ),
            (
                json!({"cdniip": "2001:db8::/32"}),
                ip("198.51.100.1"),
                Err(Reject::AddressMismatch),
            ),
            (json!({"cdniip": "2001:db8::1"}), ip("2001:db8::1"), Ok(())),
        ];
        for (claims, client, want) in cases {
            let cdni = read(claims.clone()).expect("readable");
            assert_eq!(cdni.check(client, || None), want, "{claims} {client:?}");
        }
        for bad in [
            json!("300.1.1.1"),
            json!("10.0.0.0/33"),
            json!("host.example"),
            json!(""),
            json!(7),
            json!(["127.0.0.1"]),
        ] {
            assert_eq!(
                read(json!({"cdniip": bad})).map(|_| ()),
                Err(Reject::Malformed),
                "{bad}"
            );
        }
        assert!(Reject::AddressMismatch.is_forbidden());
    }

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

    #[test]
    fn renewal_table() {
        let ask = |ets, transport, depth| {
            Ok(Some(RenewalAsk {
                ets,
                transport,
                depth,
            }))
        };
        let cases: Vec<(Value, Result<Option<RenewalAsk>, Reject>)> = vec![
            (json!({}), Ok(None)),
            (
                json!({"cdniets": 30, "cdnistt": 1}),
                ask(30, Transport::Cookie, 0),
            ),
            (
                json!({"cdniets": 30, "cdnistt": 2, "cdnistd": 2}),
                ask(30, Transport::Header, 2),
            ),
            (
                json!({"cdniets": 86_400, "cdnistt": 1}),
                ask(86_400, Transport::Cookie, 0),
            ),
            (
                json!({"cdniets": 86_401, "cdnistt": 1}),
                Err(Reject::Lifetime),
            ),
            (json!({"cdniets": 30}), Err(Reject::Malformed)),
            (json!({"cdnistt": 1}), Err(Reject::Malformed)),
            (json!({"cdnistd": 1}), Err(Reject::Malformed)),
            (json!({"cdniets": 0, "cdnistt": 1}), Err(Reject::Malformed)),
            (json!({"cdniets": -5, "cdnistt": 1}), Err(Reject::Malformed)),
            (
                json!({"cdniets": "30", "cdnistt": 1}),
                Err(Reject::Malformed),
            ),
            (json!({"cdniets": 30, "cdnistt": 3}), Err(Reject::Malformed)),
            (json!({"cdniets": 30, "cdnistt": 0}), Err(Reject::Malformed)),
            (
                json!({"cdniets": 30, "cdnistt": 1, "cdnistd": 65}),
                Err(Reject::Malformed),
            ),
            (
                json!({"cdniets": 30, "cdnistt": 1, "cdnistd": -1}),
                Err(Reject::Malformed),
            ),
        ];
        for (claims, want) in cases {
            assert_eq!(read(claims.clone()).map(|c| c.renewal), want, "{claims}");
        }
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

    #[test]
    fn cookie_path_table() {
        let cases = [
            ("/courses/101/hls/seg-1.ts", 0, "/"),
            ("/courses/101/hls/seg-1.ts", 1, "/courses/"),
            ("/courses/101/hls/seg-1.ts", 2, "/courses/101/"),
            ("/courses/101/hls/seg-1.ts", 3, "/courses/101/hls/"),
            ("/courses/101/hls/seg-1.ts", 9, "/courses/101/hls/"),
            ("/v.mp4", 3, "/"),
            ("/a%20b/v.mp4", 1, "/a%20b/"),
        ];
        for (path, depth, want) in cases {
            assert_eq!(cookie_path(path, depth), want, "{path} {depth}");
        }
    }
}
