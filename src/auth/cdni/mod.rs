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
//! Module map: this file reads the claims and checks them against a request;
//! `uri_container` holds `cdniuc` and the request URI it is matched against
//! (the URI's exact form is stated there); `renewal_claims` reads `cdniets`,
//! `cdnistt` and `cdnistd` and gives a renewed cookie's `Path`.

mod renewal_claims;
#[cfg(test)]
mod tests;
mod uri_container;

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::auth::client_addr::Cidr;
use crate::auth::reject::Reject;

pub(crate) use renewal_claims::{Transport, cookie_path};
pub(crate) use uri_container::request_uri;

use renewal_claims::{RENEWAL_CLAIMS, RenewalAsk, read_renewal};
use uri_container::UriContainer;

/// The only claim set version there is.
pub const CLAIM_SET_VERSION: u64 = 1;

/// Claims the node always implements, for `cdnicrit` (`iss` and `aud` only when it checks
/// them).
const UNDERSTOOD: [&str; 9] = [
    "sub", "exp", "nbf", "iat", "jti", "cdniv", "cdnicrit", "cdniip", "cdniuc",
];

/// What the configuration changes in how the claims are read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CdniPolicy<'a> {
    /// `auth.scope_claim`, understood when configured.
    pub scope_claim: Option<&'a str>,
    /// A renewal key is configured: `cdniets`, `cdnistt`, `cdnistd` are honoured.
    pub renews: bool,
    /// An issuer is required (`auth.issuer` or the key's): `iss` is checked.
    pub checks_issuer: bool,
    /// `aud` decides (`auth.ignore_audience` is not set): `aud` is checked.
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
