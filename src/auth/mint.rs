//! Minting tokens for `cdn-node token`, a test and operations aid. Never used on the
//! request path.

use std::path::{Path, PathBuf};

use jsonwebtoken::{AlgorithmFamily, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::auth::algorithm::{self, ALGORITHM_NAMES};
use crate::auth::secret::read_secret_file;

/// What to put in a token.
#[derive(Debug, Clone, Default)]
pub struct MintSpec {
    /// HMAC secret file (for HS*) or PEM private key (PKCS#8 for EC and Ed25519).
    pub key_file: PathBuf,
    /// Algorithm name, e.g. `HS256`.
    pub algorithm: String,
    pub kid: Option<String>,
    pub subject: Option<String>,
    /// Lifetime: `exp = now_unix + ttl_seconds`, `iat = now_unix`.
    pub ttl_seconds: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// `name=value` pairs; a value that parses as JSON is put as JSON, anything else as a
    /// string. They are applied last, so they may replace `exp`, `nbf` and the rest (useful to
    /// mint tokens that must fail).
    pub extra_claims: Vec<String>,
    pub now_unix: u64,
}

/// Signs a token as `spec` says. Errors name the bad input, never a secret.
pub fn mint(spec: &MintSpec) -> Result<String, String> {
    let alg = algorithm::parse(&spec.algorithm).ok_or_else(|| {
        format!(
            "algorithm \"{}\" is not supported: use one of {ALGORITHM_NAMES}",
            spec.algorithm
        )
    })?;
    let key = signing_key(spec, alg)?;
    let exp = spec.now_unix.checked_add(spec.ttl_seconds).ok_or_else(|| {
        format!(
            "lifetime {} s overflows the expiry time: give a shorter one",
            spec.ttl_seconds
        )
    })?;
    let mut claims = Map::new();
    claims.insert("iat".into(), spec.now_unix.into());
    claims.insert("exp".into(), exp.into());
    let optional = [
        ("sub", &spec.subject),
        ("iss", &spec.issuer),
        ("aud", &spec.audience),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            claims.insert(name.into(), value.clone().into());
        }
    }
    for pair in &spec.extra_claims {
        let (name, value) = parse_extra(pair)?;
        claims.insert(name, value);
    }
    let mut header = Header::new(alg);
    header.kid = spec.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing failed: {e}"))
}

fn signing_key(spec: &MintSpec, alg: jsonwebtoken::Algorithm) -> Result<EncodingKey, String> {
    read_signing_key(&spec.key_file, alg)
}

/// The key that signs for `alg`: an HMAC secret file (HS*) or a PEM private key (PKCS#8 for
/// EC and Ed25519). Errors name the file and the fix, never key material.
pub(crate) fn read_signing_key(
    path: &Path,
    alg: jsonwebtoken::Algorithm,
) -> Result<EncodingKey, String> {
    if alg.family() == AlgorithmFamily::Hmac {
        return read_secret_file(path).map(|secret| EncodingKey::from_secret(&secret));
    }
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "file {} cannot be read ({e}): give the path of a PEM private key",
            path.display()
        )
    })?;
    let key = match alg.family() {
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&pem),
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&pem),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&pem),
        AlgorithmFamily::Hmac => return Err("unreachable: HMAC handled above".into()),
    };
    key.map_err(|e| {
        format!(
            "file {} is not a PEM private {} for {alg:?} ({e}): give a PKCS#8 key \
             (`openssl genpkey`)",
            path.display(),
            algorithm::key_kind(alg).trim_start_matches("an ")
        )
    })
}

/// `name=value`; the value is JSON if it parses, else a string.
fn parse_extra(pair: &str) -> Result<(String, Value), String> {
    let (name, raw) = pair
        .split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("extra claim \"{pair}\" is not name=value"))?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((name.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Case = (&'static str, Result<(&'static str, Value), ()>);

    #[test]
    fn extra_claim_table() {
        let cases: &[Case] = &[
            ("plan=pro", Ok(("plan", json!("pro")))),
            ("n=42", Ok(("n", json!(42)))),
            ("ok=true", Ok(("ok", json!(true)))),
            ("l=[1,\"a\"]", Ok(("l", json!([1, "a"])))),
            ("s=\"quoted\"", Ok(("s", json!("quoted")))),
            ("eq=a=b", Ok(("eq", json!("a=b")))),
            ("empty=", Ok(("empty", json!("")))),
            ("novalue", Err(())),
            ("=x", Err(())),
        ];
        for (pair, want) in cases {
            let got = parse_extra(pair).map_err(|_| ());
            let want = want.clone().map(|(n, v)| (n.to_owned(), v));
            assert_eq!(got, want, "{pair}");
        }
    }
}
