//! Keys from a JWKS file: each JWK gives one key, with its own `kid` and pinned `alg`.

use std::path::Path;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

use crate::auth::algorithm::{self, ALGORITHM_NAMES};
use crate::auth::key::VerifyKey;
use crate::auth::secret::check_secret;

/// Loads every JWK of the file. `default_alg` applies to JWKs without `alg`. Returns the keys
/// that loaded and one message per JWK (or for the file) that did not.
pub fn read_jwks(path: &Path, default_alg: Option<Algorithm>) -> (Vec<VerifyKey>, Vec<String>) {
    let shown = format!("file {}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) => parse_jwks(&text, &shown, default_alg),
        Err(e) => (
            Vec::new(),
            vec![format!(
                "{shown} cannot be read ({e}): give the path of a JWKS file"
            )],
        ),
    }
}

/// Loads every JWK of a JWKS document; `shown` names where it came from in messages.
pub fn parse_jwks(
    text: &str,
    shown: &str,
    default_alg: Option<Algorithm>,
) -> (Vec<VerifyKey>, Vec<String>) {
    let entries = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut set)) => match set.remove("keys") {
            Some(Value::Array(entries)) if !entries.is_empty() => entries,
            _ => {
                return (
                    Vec::new(),
                    vec![format!(
                        "{shown} has no `keys` array with at least one JWK: give a JWKS \
                         document (`{{\"keys\": [...]}}`)"
                    )],
                );
            }
        },
        Ok(_) | Err(_) => {
            return (
                Vec::new(),
                vec![format!(
                    "{shown} is not a JSON object: give a JWKS document (`{{\"keys\": [...]}}`)"
                )],
            );
        }
    };
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (n, entry) in entries.into_iter().enumerate() {
        match read_jwk(entry, default_alg) {
            Ok(key) => keys.push(key),
            Err(msg) => problems.push(format!("{shown}, JWK #{n}: {msg}")),
        }
    }
    (keys, problems)
}

fn read_jwk(entry: Value, default_alg: Option<Algorithm>) -> Result<VerifyKey, String> {
    let kid = match entry.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
        Some(_) => return Err("`kid` is not a non-empty string: fix or remove it".to_owned()),
    };
    let alg = match (entry.get("alg"), default_alg) {
        (Some(Value::String(name)), default) => {
            let alg = algorithm::parse(name).ok_or_else(|| {
                format!("`alg` \"{name}\" is not supported: use one of {ALGORITHM_NAMES}")
            })?;
            if let Some(default) = default
                && default != alg
            {
                return Err(format!(
                    "`alg` {alg:?} differs from `algorithm: {default:?}` on this entry: make \
                     them agree or drop `algorithm:`"
                ));
            }
            alg
        }
        (Some(_), _) => return Err("`alg` is not a string".to_owned()),
        (None, Some(default)) => default,
        (None, None) => {
            return Err(
                "has no `alg`: add `alg` to the JWK or set `algorithm:` on this entry".to_owned(),
            );
        }
    };
    let kty = entry
        .get("kty")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kty != "oct" && entry.get("d").is_some() {
        return Err("holds private key material (`d`): publish only the public JWK".to_owned());
    }
    if let Some(curve) = entry.get("crv").and_then(Value::as_str) {
        let wanted = match alg {
            Algorithm::ES256 => Some("P-256"),
            Algorithm::ES384 => Some("P-384"),
            Algorithm::EdDSA => Some("Ed25519"),
            _ => None,
        };
        if let Some(wanted) = wanted
            && wanted != curve
        {
            return Err(format!(
                "curve {curve} does not fit {alg:?}, which needs {wanted}"
            ));
        }
    }
    let jwk: Jwk = serde_json::from_value(entry)
        .map_err(|e| format!("is not a valid JWK ({e}): fix the JWKS file"))?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|e| format!("cannot be used as a key ({e}): fix the JWKS file"))?;
    if key.family() != alg.family() {
        return Err(format!(
            "key type `{kty}` does not fit {alg:?}: give {} or change `alg`",
            algorithm::key_kind(alg)
        ));
    }
    if alg.family() == AlgorithmFamily::Hmac {
        check_secret(key.as_bytes(), "`k`")?;
    }
    Ok(VerifyKey::new(kid, alg, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    type Want = Result<(Option<&'static str>, Algorithm), &'static str>;
    type Case = (&'static str, Value, Option<Algorithm>, Want);

    #[test]
    fn jwk_table() {
        let cases: Vec<Case> = vec![
            (
                "rsa",
                json!({"kty": "RSA", "kid": "a", "alg": "RS256", "n": N, "e": "AQAB"}),
                None,
                Ok((Some("a"), Algorithm::RS256)),
            ),
            (
                "rsa as PS384 by entry",
                json!({"kty": "RSA", "n": N, "e": "AQAB"}),
                Some(Algorithm::PS384),
                Ok((None, Algorithm::PS384)),
            ),
            (
                "ec",
                json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "x": X, "y": Y}),
                None,
                Ok((None, Algorithm::ES256)),
            ),
            (
                "no alg",
                json!({"kty": "RSA", "n": N, "e": "AQAB"}),
                None,
                Err("has no `alg`"),
            ),
            (
                "alg none",
                json!({"kty": "RSA", "alg": "none", "n": N, "e": "AQAB"}),
                None,
                Err("\"none\""),
            ),
            (
                "alg differs",
                json!({"kty": "RSA", "alg": "RS256", "n": N, "e": "AQAB"}),
                Some(Algorithm::RS512),
                Err("differs"),
            ),
            (
                "private rsa",
                json!({"kty": "RSA", "alg": "RS256", "n": N, "e": "AQAB", "d": "AQAB"}),
                None,
                Err("private"),
            ),
            (
                "curve mismatch",
                json!({"kty": "EC", "crv": "P-256", "alg": "ES384", "x": X, "y": Y}),
                None,
                Err("P-384"),
            ),
            (
                "type mismatch",
                json!({"kty": "RSA", "alg": "ES256", "n": N, "e": "AQAB"}),
                None,
                Err("does not fit"),
            ),
            (
                "short oct",
                json!({"kty": "oct", "alg": "HS256", "k": "c2hvcnQ"}),
                None,
                Err("only 5 bytes"),
            ),
            (
                "kid number",
                json!({"kty": "RSA", "kid": 3, "alg": "RS256", "n": N, "e": "AQAB"}),
                None,
                Err("`kid`"),
            ),
            (
                "not a jwk",
                json!({"kty": "XYZ", "alg": "RS256"}),
                None,
                Err("not a valid JWK"),
            ),
        ];
        for (name, entry, default, want) in cases {
            match (read_jwk(entry, default), want) {
                (Ok(key), Ok((kid, alg))) => {
                    assert_eq!((key.kid.as_deref(), key.algorithm), (kid, alg), "{name}");
                }
                (Err(msg), Err(needle)) => assert!(msg.contains(needle), "{name}: {msg}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
