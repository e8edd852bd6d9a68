//! Tokens for tests, signed with jsonwebtoken directly so each test can
//! shape exactly the header and claims it needs (including bad ones).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::node::{AUDIENCE, HMAC_SECRET, ISSUER};
use super::unix_now;

/// Claims of a good token for the test node: one hour left.
pub fn good_claims(sub: &str) -> Value {
    let now = unix_now();
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600 })
}

pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        Some("main"),
        claims,
        HMAC_SECRET.as_bytes(),
    )
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}

/// A token with a hand-made header, HMAC-signed with the test secret
/// (for headers jsonwebtoken will not produce: `alg: none`, `crit`).
pub fn with_raw_header(header: &Value, claims: &Value) -> String {
    use aws_lc_rs::hmac;
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{c}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, HMAC_SECRET.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(hmac::sign(&key, input.as_bytes()).as_ref());
    format!("{input}.{sig}")
}

/// `alg: none`, no signature.
pub fn unsigned(alg_spelling: &str, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg_spelling, "typ": "JWT"}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{c}.")
}
