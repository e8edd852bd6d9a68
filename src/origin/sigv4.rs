//! SigV4 header signing of origin requests to S3.
//!
//! The request URI handed to [`sign`] is taken verbatim as the SigV4
//! canonical URI (no normalisation, single encoding), which is what S3
//! expects, and what [`crate::request::path::canonicalize`] produces. The
//! query should be the output of [`crate::request::query::canonical`]: it is
//! already the SigV4 canonical query string. The caller sends the request
//! with exactly that path and query and with `Host: {host}`, adding the
//! returned headers.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use thiserror::Error;

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

/// The absolute URI the signer parses; it must keep the path and query
/// exactly as given.
fn request_uri(host: &str, path: &str, query: &str) -> Result<String, SignError> {
    if !path.starts_with('/') {
        return Err(SignError::InvalidUri("path must start with '/'".to_owned()));
    }
    if !sigv4_encoded(path, b"/") {
        return Err(SignError::InvalidUri(
            "path is not in canonical form (unreserved, '/' and uppercase %XX only)".to_owned(),
        ));
    }
    if !sigv4_encoded(query, b"=&") {
        return Err(SignError::InvalidUri(
            "query is not in canonical form (unreserved, '=', '&' and uppercase %XX only)"
                .to_owned(),
        ));
    }
    let uri = if query.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{query}")
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| SignError::InvalidUri(e.to_string()))?;
    let same_query = parsed.query().unwrap_or("") == query;
    if parsed.path() != path || !same_query {
        return Err(SignError::InvalidUri(
            "path or query does not survive URI parsing".to_owned(),
        ));
    }
    Ok(uri)
}

/// Whether `s` is already in SigV4 canonical encoding: only unreserved bytes,
/// the `raw` delimiters, and `%XX` escapes with uppercase hex. Such a string
/// is signed exactly as it is sent.
fn sigv4_encoded(s: &str, raw: &[u8]) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| {
                bytes
                    .get(j)
                    .is_some_and(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
            };
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || raw.contains(&b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `name`, `name:port`, `1.2.3.4:port` or `[v6]:port`: no userinfo, path,
/// spaces or control characters.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
        && host.parse::<http::uri::Authority>().is_ok()
        && valid_port(host)
}

/// The part after the last `:` outside `[...]`, if any, is a `u16`.
fn valid_port(host: &str) -> bool {
    let tail = host.rfind(']').map_or(host, |i| &host[i + 1..]);
    match tail.rfind(':') {
        None => true,
        Some(i) => tail[i + 1..].parse::<u16>().is_ok(),
    }
}

fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// 20130524T000000Z
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn example_creds(session_token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: AWS_KEY.to_owned(),
            secret_access_key: AWS_SECRET.to_owned(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// AWS S3 docs, "Signature Calculations for the Authorization Header",
    /// Example: GET Object (with `Range: bytes=0-9`).
    #[test]
    fn aws_documented_get_object_example() {
        let (headers, signature) = sign_with_headers(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            &[("range", "bytes=0-9")],
            "us-east-1",
            &example_creds(None),
            example_time(),
        )
        .expect("signs");
        assert_eq!(
            signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
                 Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            )
        );
        assert_eq!(header(&headers, "x-amz-date"), Some("20130524T000000Z"));
        assert_eq!(header(&headers, "x-amz-content-sha256"), Some(EMPTY_SHA256));
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    /// Signatures of the public `sign` (no range header). The expected values
    /// were computed independently (python3 hmac/hashlib SigV4 chain over the
    /// canonical request, see the report); each row is method, host, uri,
    /// query, session token, signature.
    /// method, host, uri, query, session token, expected signature
    type SigCase = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
    );

    const CASES: &[SigCase] = &[
        (
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            None,
            "df548e2ce037944d03f3e68682813b093763996d597cf890ca3d9037fd231eb4",
        ),
        (
            "HEAD",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            None,
            "69463d8f0bf59cfd12d6fc9f45cd84a5323d7bf3c5bd316736a2f8e50c8959a7",
        ),
        (
            "GET",
            "127.0.0.1:19000",
            "/bucket/a%20b%2Bc~%C3%A9.txt",
            "partNumber=1&versionId=a%2Fb",
            None,
            "6c379d64745d4db306d9797232daa3cf13945169be0ff6a99320c1ead411caac",
        ),
        (
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            Some("SESSIONTOKEN"),
            "1db744c2885650b493959873e99d1835a31a5b7a627e9b7913836b78175e4332",
        ),
    ];

    #[test]
    fn signatures_match_independent_computation() {
        for (method, host, uri, query, token, want) in CASES {
            let headers = sign(
                method,
                host,
                uri,
                query,
                "us-east-1",
                &example_creds(*token),
                example_time(),
            )
            .expect("signs");
            let auth = header(&headers, "authorization").expect("authorization");
            let signed = if token.is_some() {
                "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
            } else {
                "host;x-amz-content-sha256;x-amz-date"
            };
            assert_eq!(
                auth,
                format!(
                    "AWS4-HMAC-SHA256 Credential={AWS_KEY}/20130524/us-east-1/s3/aws4_request, \
                     SignedHeaders={signed}, Signature={want}"
                ),
                "{method} {host}{uri}?{query}"
            );
            assert_eq!(header(&headers, "x-amz-security-token"), *token);
            assert_eq!(header(&headers, "x-amz-date"), Some("20130524T000000Z"));
            assert_eq!(header(&headers, "x-amz-content-sha256"), Some(EMPTY_SHA256));
        }
    }

    const REJECTS: &[(&str, &str, &str, &str, &str, SignError)] = &[
        (
            "POST",
            "h",
            "/a",
            "",
            "us-east-1",
            SignError::UnsupportedMethod(String::new()),
        ),
        (
            "get",
            "h",
            "/a",
            "",
            "us-east-1",
            SignError::UnsupportedMethod(String::new()),
        ),
        (
            "GET",
            "",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "u@h",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "h/x",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "h x",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "h\r\n",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "h:",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "h:99999999",
            "/a",
            "",
            "us-east-1",
            SignError::InvalidHost(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "",
            "",
            SignError::InvalidRegion(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "",
            "us east",
            SignError::InvalidRegion(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "",
            "us/east",
            SignError::InvalidRegion(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "",
            "x\n",
            SignError::InvalidRegion(String::new()),
        ),
        (
            "GET",
            "h",
            "a",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a?b",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a#b",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a b",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a\n",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "b c",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "b#c",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/é",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a%2a",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a+b",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a*b",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a%4",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a%",
            "",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "b=%2f",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "b=+",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
        (
            "GET",
            "h",
            "/a",
            "b=1;c=2",
            "us-east-1",
            SignError::InvalidUri(String::new()),
        ),
    ];

    /// Raw request targets whose canonical path and query must be signable
    /// as they are.
    const CANONICAL_TARGETS: &[(&str, &str)] = &[
        ("/bucket/a.txt", ""),
        ("/bucket/a b+c~é(1)*.mp4", "partNumber=1"),
        ("/bucket/%e6%97%a5/%7Ex", "versionId=a/b+c&partNumber=2"),
        ("/bucket/dir/", "q=%2a%2A*"),
    ];

    #[test]
    fn canonical_paths_and_queries_sign() {
        use crate::request::{path, query};
        let creds = example_creds(None);
        for (raw_path, raw_query) in CANONICAL_TARGETS {
            let p = path::canonicalize(raw_path).expect("valid path");
            let pairs = query::parse(raw_query).expect("valid query");
            let q = query::canonical(&pairs, |_| true);
            let got = sign("GET", "h:1", &p, &q, "us-east-1", &creds, example_time());
            assert!(got.is_ok(), "{p:?} {q:?}: {got:?}");
        }
    }

    /// Host header values that must be accepted (signed verbatim).
    const HOSTS: &[&str] = &[
        "examplebucket.s3.amazonaws.com",
        "s3.eu-west-1.amazonaws.com",
        "127.0.0.1",
        "127.0.0.1:9000",
        "localhost:19000",
        "[::1]",
        "[::1]:9000",
        "[2001:db8::1]:443",
        "minio_internal:9000",
    ];

    #[test]
    fn accepts_hosts() {
        let creds = example_creds(None);
        for host in HOSTS {
            let got = sign("GET", host, "/a", "", "us-east-1", &creds, example_time());
            assert!(got.is_ok(), "{host}: {got:?}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let creds = example_creds(None);
        for (method, host, uri, query, region, want) in REJECTS {
            let got = sign(method, host, uri, query, region, &creds, example_time());
            let Err(err) = got else {
                panic!("must fail: {method} {host:?} {uri:?} {query:?} {region:?}")
            };
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(want),
                "{method} {host:?} {uri:?} {query:?} {region:?}: {err}"
            );
        }
    }

    const TIMES: &[(i64, bool)] = &[
        (0, true),
        (1_369_353_600, true),
        (253_402_300_799, true),
        (253_402_300_800, false),
        (-1, false),
    ];

    #[test]
    fn time_range() {
        let creds = example_creds(None);
        for (secs, ok) in TIMES {
            let now = if *secs >= 0 {
                UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            } else {
                UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            };
            let got = sign("GET", "h", "/a", "", "us-east-1", &creds, now);
            assert_eq!(got.is_ok(), *ok, "secs {secs}: {got:?}");
        }
    }

    #[test]
    fn bad_session_token_is_an_error_not_a_panic() {
        let creds = example_creds(Some("bad\ntoken"));
        let got = sign("GET", "h", "/a", "", "us-east-1", &creds, example_time());
        assert!(got.is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let creds = example_creds(Some("THE-SESSION-TOKEN"));
        let shown = format!("{creds:?} {creds:#?}");
        assert!(shown.contains(AWS_KEY));
        assert!(!shown.contains(AWS_SECRET));
        assert!(!shown.contains("wJalr"));
        assert!(!shown.contains("THE-SESSION-TOKEN"));
        let none = format!("{:?}", example_creds(None));
        assert!(none.contains("session_token: None"));
    }
}
