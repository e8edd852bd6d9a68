//! The gate every request passes before anything else happens: method, path,
//! query and token. The result is either a refusal or the canonical request
//! that the cache keys on and S3 is asked for, with the token gone.

use std::net::IpAddr;

use pingora::http::RequestHeader;

use crate::auth::{AuthOutcome, Reject, Renewed, RequestFacts, SourceKind, Verifier, extract};
use crate::origin::settings::OriginConfig;
use crate::refusal::{BadRequest, Refusal};
use crate::request::method::MethodSet;
use crate::request::{host, path, query};

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
    /// `Ok` or `Public`.
    pub auth: AuthOutcome,
    /// A renewed token (RFC 9246 `cdniets`), added to the response by `response_filter`.
    pub renewal: Option<Renewed>,
    /// Which of the verifier's token sources carried the token, when it
    /// is a query parameter: manifests then pass the token on in it.
    pub token_query: Option<usize>,
}

/// Lets the request of a client at `client` (see [`Verifier::client_address`]) through
/// the gate, or says why not. When the token names a `kid` no key has and keys come from
/// JWKS URLs, waits for one fetch round (single-flight, rate-limited) and tries once more.
pub async fn admit(
    req: &RequestHeader,
    client: Option<IpAddr>,
    verifier: &Verifier,
    origin: &OriginConfig,
    now_unix: u64,
) -> Result<Admitted, Refusal> {
    let target = Target::read(req, verifier, origin)?;
    admit_target(target, req, client, verifier, now_unix).await
}

/// [`admit`] for a target already read.
pub async fn admit_target(
    target: Target<'_>,
    req: &RequestHeader,
    client: Option<IpAddr>,
    verifier: &Verifier,
    now_unix: u64,
) -> Result<Admitted, Refusal> {
    let checked = match check(&target, req, client, verifier, now_unix) {
        Err(refused) if refused.reject() == Some(Reject::UnknownKey) && verifier.has_key_urls() => {
            if verifier.fetch_for_unknown_kid().await {
                check(&target, req, client, verifier, now_unix)
            } else {
                Err(refused)
            }
        }
        other => other,
    }?;
    Ok(Admitted {
        path: target.canonical,
        query: target.query,
        ..checked
    })
}

/// A client request's target as the gate reads it before any token is
/// checked: the canonical path and the canonical query (no token, no S3
/// overrides). Reading it changes nothing (no token is checked, no replay
/// recorded): a caller may look at it and still leave the request to
/// another path, which admits it then.
pub struct Target<'r> {
    pub canonical: String,
    pub query: String,
    pairs: Vec<query::Pair<'r>>,
}

impl<'r> Target<'r> {
    /// Reads `req`'s target; the refusal the gate gives when it cannot.
    pub fn read(
        req: &'r RequestHeader,
        verifier: &Verifier,
        origin: &OriginConfig,
    ) -> Result<Target<'r>, Refusal> {
        if !host::is_sound(req) {
            return Err(Refusal::BadRequest(BadRequest::Host));
        }
        let (canonical, pairs) = read_target(req, Some(origin))?;
        let sources = verifier.token_sources();
        let query = query::canonical(&pairs, |name| {
            !extract::is_token_param(sources, name) && origin.forwards_query(name)
        });
        Ok(Target {
            canonical,
            query,
            pairs,
        })
    }

    /// Whether the request's token came in a query parameter (`false` when
    /// it has none, or the gate would refuse its tokens).
    pub fn token_in_query(&self, req: &RequestHeader, verifier: &Verifier) -> bool {
        extract::find_token(verifier.token_sources(), &self.pairs, &req.headers)
            .is_ok_and(|found| found.is_some_and(|f| f.kind == SourceKind::Query))
    }
}

/// The checks every request's target passes first, on either listener: a
/// method served (GET or HEAD, or on the client listener one `origin` is
/// passed; else 405 naming those), a UTF-8 path, then the canonical path
/// and the query's pairs.
fn read_target<'r>(
    req: &'r RequestHeader,
    origin: Option<&OriginConfig>,
) -> Result<(String, Vec<query::Pair<'r>>), Refusal> {
    let method = req.method.as_str();
    let served = origin.map_or(MethodSet::READ.contains(method), |o| {
        o.passes_method(method)
    });
    if !served {
        let allowed = origin.map_or(MethodSet::READ, OriginConfig::allowed);
        return Err(Refusal::MethodNotAllowed(allowed));
    }
    if !req.raw_path_is_utf8() {
        return Err(Refusal::BadRequest(BadRequest::PathEncoding));
    }
    let canonical =
        path::canonicalize(req.uri.path()).map_err(|e| Refusal::BadRequest(BadRequest::Path(e)))?;
    let pairs = query::parse(req.uri.query().unwrap_or(""))
        .map_err(|_| Refusal::BadRequest(BadRequest::Query))?;
    Ok((canonical, pairs))
}

/// Lets a request on the peer listener through: another node of the fleet
/// checked the client's token and signed the hop (the caller checked the
/// marker); the target arrives canonical, without a token.
pub fn admit_hop(req: &RequestHeader, origin: &OriginConfig) -> Result<Admitted, Refusal> {
    // Hops carry GET and HEAD only: other methods go to the origin from
    // the node the client reached.
    let (canonical, pairs) = read_target(req, None)?;
    let query = query::canonical(&pairs, |name| origin.forwards_query(name));
    if canonical.ends_with('/') {
        return Err(Refusal::NotFound);
    }
    Ok(Admitted {
        path: canonical,
        query,
        subject: None,
        auth: AuthOutcome::Peer,
        renewal: None,
        token_query: None,
    })
}

/// The token checks of [`admit`]: what the admitted request learnt, its
/// path and query left empty for the caller to move in.
fn check(
    target: &Target<'_>,
    req: &RequestHeader,
    client: Option<IpAddr>,
    verifier: &Verifier,
    now_unix: u64,
) -> Result<Admitted, Refusal> {
    let sources = verifier.token_sources();
    let found = extract::find_token(sources, &target.pairs, &req.headers).map_err(Refusal::from)?;
    let canonical = &target.canonical;
    let query = &target.query;
    let (subject, auth, renewal, token_query) = if verifier.is_public(canonical) {
        (None, AuthOutcome::Public, None, None)
    } else {
        let Some(found) = found else {
            return Err(Refusal::from(Reject::Missing));
        };
        let facts = RequestFacts {
            path: canonical,
            client,
            host: host::of(req),
            query,
        };
        let grant = verifier
            .authorize(found.token, &facts, now_unix)
            .map_err(Refusal::from)?;
        let renewal = verifier.renewal(&grant, &facts, now_unix);
        let token_query = (found.kind == SourceKind::Query).then_some(found.source_index);
        (
            grant.claims.sub.clone(),
            AuthOutcome::Ok,
            renewal,
            token_query,
        )
    };
    // A path naming a "folder" would be a bucket listing at S3.
    if canonical.ends_with('/') {
        return Err(Refusal::NotFound);
    }
    Ok(Admitted {
        path: String::new(),
        query: String::new(),
        subject,
        auth,
        renewal,
        token_query,
    })
}
