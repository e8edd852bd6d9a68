//! SigV4 header signing of origin requests to S3.
//!
//! The request URI handed to [`sign`] is taken verbatim as the SigV4
//! canonical URI (no normalisation, single encoding), which is what S3
//! expects, and what [`crate::request::path::canonicalize`] produces. The
//! query should be the output of [`crate::request::query::canonical`]: it is
//! already the SigV4 canonical query string. The caller sends the request
//! with exactly that path and query and with `Host: {host}`, adding the
//! returned headers.
//!
//! [`sign`] checks its input first (`input`: method, host, region, and that
//! the path and query are already in canonical form), then signs with
//! `aws-sigv4`.

mod input;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use thiserror::Error;

use input::{request_uri, valid_host, valid_region};

/// The S3 signing name.
const SERVICE: &str = "s3";

/// The last second SigV4's date formatting accepts (9999-12-31T23:59:59Z).
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// Static or temporary AWS credentials for the origin bucket. `Debug` never
/// prints the secret key or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a request could not be signed. None of these carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    #[error("method {0:?} is not signed: only GET and HEAD are")]
    UnsupportedMethod(String),
    #[error("invalid origin host {0:?}")]
    InvalidHost(String),
    #[error("invalid region {0:?}")]
    InvalidRegion(String),
    #[error("invalid request URI: {0}")]
    InvalidUri(String),
    #[error("signing time is outside 1970..=9999")]
    InvalidTime,
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("signed header {0} has a value that is not a valid header value")]
    InvalidHeaderValue(String),
}

/// Signs a body-less `GET` or `HEAD` of `canonical_uri?canonical_query` on
/// `host` (with `:port` when not the scheme's default) for S3 in `region`, at
/// `now`. Returns the headers to add: `authorization`, `x-amz-date`,
/// `x-amz-content-sha256` (the SHA-256 of the empty body) and, with a session
/// token, `x-amz-security-token`. The `host` header is signed but not
/// returned: the caller sends `Host: {host}` as given.
pub fn sign(
    method: &str,
    host: &str,
    canonical_uri: &str,
    canonical_query: &str,
    region: &str,
    creds: &Credentials,
    now: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    sign_with_headers(
        method,
        host,
        canonical_uri,
        canonical_query,
        &[],
        region,
        creds,
        now,
    )
    .map(|(headers, _signature)| headers)
}

/// [`sign`] with extra request headers included in the signature; also
/// returns the bare signature (for tests).
#[allow(clippy::too_many_arguments)]
fn sign_with_headers(
    method: &str,
    host: &str,
    canonical_uri: &str,
    canonical_query: &str,
    extra_headers: &[(&str, &str)],
    region: &str,
    creds: &Credentials,
    now: SystemTime,
) -> Result<(Vec<(String, String)>, String), SignError> {
    if method != "GET" && method != "HEAD" {
        return Err(SignError::UnsupportedMethod(method.to_owned()));
    }
    if !valid_host(host) {
        return Err(SignError::InvalidHost(host.to_owned()));
    }
    if !valid_region(region) {
        return Err(SignError::InvalidRegion(region.to_owned()));
    }
    let in_range = now
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d <= Duration::from_secs(MAX_UNIX_SECS));
    if !in_range {
        return Err(SignError::InvalidTime);
    }

    let uri = request_uri(host, canonical_uri, canonical_query)?;

    let identity: Identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "cdn-node",
    )
    .into();

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = SignatureLocation::Headers;

    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into();

    let headers = std::iter::once(("host", host)).chain(extra_headers.iter().copied());
    let request = SignableRequest::new(method, uri, headers, SignableBody::Bytes(&[]))
        .map_err(|e| SignError::InvalidUri(e.to_string()))?;
    let (instructions, signature) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into_parts();

    let mut out = Vec::with_capacity(4);
    for (name, value) in instructions.headers() {
        if http::HeaderValue::from_str(value).is_err() {
            return Err(SignError::InvalidHeaderValue(name.to_owned()));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok((out, signature))
}
