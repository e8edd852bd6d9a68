//! The gate every request passes before anything else happens: method, path,
//! query and token. The result is either a refusal or the canonical request
//! that the cache keys on and S3 is asked for, with the token gone.

use std::net::IpAddr;

use pingora::http::RequestHeader;

use crate::auth::{Reject, Renewed, RequestFacts, Verifier, extract};
use crate::origin::settings::OriginConfig;
use crate::refusal::Refusal;
use crate::request::{path, query};

/// A request let through the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The canonical path: what auth checked, what the cache keys on, what
    /// S3 is asked for.
    pub path: String,
    /// Allowed query parameters in canonical order (no token, no S3
    /// overrides).
    pub query: String,
    pub subject: Option<String>,
    /// `ok` or `public`.
    pub auth: &'static str,
    /// A renewed token (RFC 9246 `cdniets`), added to the response by `response_filter`.
    pub renewal: Option<Renewed>,
}

/// Why the gate refused: the answer plus the labels it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub refusal: Refusal,
    /// Set when the token gate refused (auth rejection metric).
    pub auth_reason: Option<&'static str>,
}

impl Refused {
    fn request(reason: &'static str) -> Refused {
        Refused {
            refusal: Refusal::BadRequest { reason },
            auth_reason: None,
        }
    }

    fn auth(reject: &Reject) -> Refused {
        let reason = reject.reason();
        let refusal = match reject {
            Reject::Conflict => Refusal::BadRequest { reason },
            r if r.is_forbidden() => Refusal::Forbidden { reason },
            _ => Refusal::Unauthorized { reason },
        };
        Refused {
            refusal,
            auth_reason: Some(reason),
        }
    }
}

pub fn admit(
    req: &RequestHeader,
    verifier: &Verifier,
    origin: &OriginConfig,
    now_unix: u64,
) -> Result<Admitted, Refused> {
    admit_from(req, None, verifier, origin, now_unix)
}

/// [`admit`] for a client at `client` (see [`Verifier::client_address`]); when the token
/// names a `kid` no key has and keys come from JWKS URLs, waits for one fetch round
/// (single-flight, rate-limited) and tries once more.
pub async fn admit_fetching(
    req: &RequestHeader,
    client: Option<IpAddr>,
    verifier: &Verifier,
    origin: &OriginConfig,
    now_unix: u64,
) -> Result<Admitted, Refused> {
    match admit_from(req, client, verifier, origin, now_unix) {
        Err(refused)
            if refused.auth_reason == Some(Reject::UnknownKey.reason())
                && verifier.has_key_urls() =>
        {
            if verifier.fetch_for_unknown_kid().await {
                admit_from(req, client, verifier, origin, now_unix)
            } else {
                Err(refused)
            }
        }
        other => other,
    }
}

pub fn admit_from(
    req: &RequestHeader,
    client: Option<IpAddr>,
    verifier: &Verifier,
    origin: &OriginConfig,
    now_unix: u64,
) -> Result<Admitted, Refused> {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Err(Refused {
            refusal: Refusal::MethodNotAllowed,
            auth_reason: None,
        });
    }
    if !req.raw_path_is_utf8() {
        return Err(Refused::request("path_encoding"));
    }
    let canonical = path::canonicalize(req.uri.path()).map_err(|e| Refused::request(e.reason()))?;
    let pairs =
        query::parse(req.uri.query().unwrap_or("")).map_err(|_| Refused::request("query"))?;
    let sources = verifier.token_sources();
    let found =
        extract::find_token(sources, &pairs, &req.headers).map_err(|e| Refused::auth(&e))?;
    let query = query::canonical(&pairs, |name| {
        !extract::is_token_param(sources, name) && origin.forwards_query(name)
    });
    let (subject, auth, renewal) = if verifier.is_public(&canonical) {
        (None, "public", None)
    } else {
        let Some(found) = found else {
            return Err(Refused::auth(&Reject::Missing));
        };
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        let facts = RequestFacts {
            path: &canonical,
            client,
            host,
            query: &query,
        };
        let grant = verifier
            .authorize(found.token, &facts, now_unix)
            .map_err(|e| Refused::auth(&e))?;
        let renewal = verifier.renewal(&grant, &facts, now_unix);
        (grant.claims.sub.clone(), "ok", renewal)
    };
    // A path naming a "folder" would be a bucket listing at S3.
    if canonical.ends_with('/') {
        return Err(Refused {
            refusal: Refusal::NotFound,
            auth_reason: None,
        });
    }
    Ok(Admitted {
        path: canonical,
        query,
        subject,
        auth,
        renewal,
    })
}
