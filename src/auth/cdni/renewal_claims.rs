//! Signed token renewal as a token asks for it (RFC 9246): `cdniets` (how long the renewed
//! token lives), `cdnistt` (how it travels back: a cookie or a header) and `cdnistd` (how
//! much of the path a renewed cookie covers). Signing the renewed token is
//! [`crate::auth::renewal`]'s.

use serde_json::{Map, Value};

use crate::auth::cdni::CdniPolicy;
use crate::auth::reject::Reject;

/// Largest accepted `cdnistd`.
pub const MAX_SIGNED_TOKEN_DEPTH: u64 = 64;

/// Claims the node implements only when it can sign renewed tokens.
pub(super) const RENEWAL_CLAIMS: [&str; 3] = ["cdniets", "cdnistt", "cdnistd"];

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

/// `cdniets` and `cdnistt` come together; `cdnistd` is optional. Read (and their shape
/// checked) whether or not the node renews.
pub(super) fn read_renewal(
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
    use serde_json::json;

    use super::*;
    use crate::auth::cdni::tests::read;

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
