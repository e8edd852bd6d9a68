//! Test helpers: the fixture keys under `tests/fixtures/keys/` and token builders.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::auth::settings::{AuthSettings, KeySettings};
use crate::auth::verifier::Verifier;

/// A fixed "now" for tests: 2023-11-14.
pub const NOW: u64 = 1_700_000_000;
pub const ISSUER: &str = "https://learn.example";
pub const AUDIENCE: &str = "cdn-node";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The private key file that signs for `alg`, and the public one that verifies.
pub fn key_files(alg: Algorithm) -> (&'static str, &'static str) {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => ("hmac.secret", "hmac.secret"),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => ("rsa2048.pem", "rsa2048.pub.pem"),
        ES256 => ("ec-p256.pem", "ec-p256.pub.pem"),
        ES384 => ("ec-p384.pem", "ec-p384.pub.pem"),
        EdDSA => ("ed25519.pem", "ed25519.pub.pem"),
    }
}

pub const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The configuration entry for the fixture key of `alg`.
pub fn key_entry(kid: Option<&str>, alg: Algorithm) -> KeySettings {
    let (_, public) = key_files(alg);
    let file = Some(PathBuf::from(public));
    let hmac = alg.family() == jsonwebtoken::AlgorithmFamily::Hmac;
    KeySettings {
        kid: kid.map(str::to_owned),
        algorithm: Some(format!("{alg:?}")),
        secret_file: if hmac { file.clone() } else { None },
        public_key_file: if hmac { None } else { file },
        ..KeySettings::default()
    }
}

/// Settings with an issuer and audience and the given keys.
pub fn settings(keys: Vec<KeySettings>) -> AuthSettings {
    AuthSettings {
        keys,
        issuer: Some(ISSUER.to_owned()),
        audience: Some(AUDIENCE.into()),
        ..AuthSettings::default()
    }
}

/// The signing key of the fixture for `alg`.
pub fn signing_key(alg: Algorithm) -> EncodingKey {
    let (private, _) = key_files(alg);
    let bytes = fixture(private);
    let built = match alg.family() {
        jsonwebtoken::AlgorithmFamily::Hmac => Ok(EncodingKey::from_secret(bytes.trim_ascii_end())),
        jsonwebtoken::AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&bytes),
        jsonwebtoken::AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&bytes),
        jsonwebtoken::AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&bytes),
    };
    built.unwrap_or_else(|e| panic!("fixture key for {alg:?}: {e}"))
}

/// Signs any header and payload text as they are, so tests can build tokens that no
/// well-behaved library would: odd headers, wrong types, duplicate members.
pub fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg)
        .unwrap_or_else(|e| panic!("signing for {alg:?}: {e}"));
    format!("{message}.{signature}")
}

/// Good claims at `NOW` as JSON text. Members of `changes` replace them; a `null` removes
/// the claim.
pub fn claims(changes: serde_json::Value) -> String {
    let mut all = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "jti": "j1", "iat": NOW, "exp": NOW + 600,
    });
    if let (Some(all), serde_json::Value::Object(changes)) = (all.as_object_mut(), changes) {
        for (name, value) in changes {
            if value.is_null() {
                all.remove(&name);
            } else {
                all.insert(name, value);
            }
        }
    }
    all.to_string()
}

/// Loads settings against the fixture folder; panics with the problems.
pub fn load(settings: &AuthSettings) -> Verifier {
    Verifier::from_settings(settings, &fixtures())
        .unwrap_or_else(|problems| panic!("settings refused: {problems:?}"))
}

pub fn header(alg: Algorithm, kid: Option<&str>) -> String {
    match kid {
        Some(kid) => {
            serde_json::json!({"alg": format!("{alg:?}"), "typ": "JWT", "kid": kid}).to_string()
        }
        None => serde_json::json!({"alg": format!("{alg:?}"), "typ": "JWT"}).to_string(),
    }
}

/// A token signed by the fixture key of `alg`.
pub fn signed(alg: Algorithm, kid: Option<&str>, claims_text: &str) -> String {
    sign_raw(&header(alg, kid), claims_text, &signing_key(alg), alg)
}

pub fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
