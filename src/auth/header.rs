//! The parts of a token's JOSE header that choose the key, read before any signature check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use std::borrow::Cow;

use crate::auth::algorithm;
use crate::auth::reject::Reject;

/// What the header asks for. Other members (`jku`, `x5u`, `jwk`, `x5c`, ...) are never used:
/// keys come only from configuration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// The header members read here. Duplicate members are refused by the derive.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Present,
}

/// True when the member is there at all, whatever its value (even `null`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// Checks the compact framing (three base64url parts) and reads the header.
pub(crate) fn read_header(token: &str) -> Result<TokenHeader, Reject> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Reject::Malformed)?;
    // A derived struct would also take a JSON array: only an object is a header.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(Reject::Malformed);
    }
    let raw: RawHeader<'_> = serde_json::from_slice(&bytes).map_err(|_| Reject::Malformed)?;
    if raw.crit.0 {
        return Err(Reject::Crit);
    }
    let alg = match raw.alg {
        Some(name) => algorithm::parse(&name).ok_or(Reject::WrongAlgorithm)?,
        None => return Err(Reject::Malformed),
    };
    Ok(TokenHeader {
        alg,
        kid: raw.kid.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn header_table() {
        let hs = |kid: Option<&str>| {
            Ok(TokenHeader {
                alg: Algorithm::HS256,
                kid: kid.map(str::to_owned),
            })
        };
        let cases: Vec<(String, Result<TokenHeader, Reject>)> = vec![
            (token(r#"{"alg":"HS256"}"#), hs(None)),
            (token(r#"{"alg":"HS256","kid":"k1"}"#), hs(Some("k1"))),
            (
                token(
                    r#"{"alg":"HS256","jku":"https://evil.example/jwks","x5u":"https://evil.example/c"}"#,
                ),
                hs(None),
            ),
            (token(r#"{"alg":"HS256","kid":7}"#), Err(Reject::Malformed)),
            (token(r#"{"alg":"none"}"#), Err(Reject::WrongAlgorithm)),
            (token(r#"{"alg":"NoNe"}"#), Err(Reject::WrongAlgorithm)),
            (token(r#"{"alg":"HS1024"}"#), Err(Reject::WrongAlgorithm)),
            (token(r#"{"alg":""}"#), Err(Reject::WrongAlgorithm)),
            (token(r#"{"alg":null}"#), Err(Reject::Malformed)),
            (token(r#"{"typ":"JWT"}"#), Err(Reject::Malformed)),
            (
                token(r#"{"alg":"HS256","crit":["exp"]}"#),
                Err(Reject::Crit),
            ),
            (token(r#"["HS256"]"#), Err(Reject::Malformed)),
            (token("not json"), Err(Reject::Malformed)),
            (
                "eyJhbGciOiJIUzI1NiJ9.e30".to_owned(),
                Err(Reject::Malformed),
            ),
            (
                "eyJhbGciOiJIUzI1NiJ9.e30.c2ln.x".to_owned(),
                Err(Reject::Malformed),
            ),
            (
                "eyJhbGciOiJIUzI1NiJ9=.e30.c2ln".to_owned(),
                Err(Reject::Malformed),
            ),
            (
                "e+JhbGciOiJIUzI1NiJ9.e30.c2ln".to_owned(),
                Err(Reject::Malformed),
            ),
            (String::new(), Err(Reject::Malformed)),
            ("..".to_owned(), Err(Reject::Malformed)),
        ];
        for (token, want) in cases {
            assert_eq!(read_header(&token), want, "{token}");
        }
    }
}
