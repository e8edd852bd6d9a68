//! Public keys from PEM files.

use std::path::Path;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::auth::algorithm::key_kind;

/// Reads a PEM public key for `algorithm`. The error names the file and the fix.
pub fn read_public_key(path: &Path, algorithm: Algorithm) -> Result<DecodingKey, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        format!("file {shown} cannot be read ({e}): give the path of a PEM public key")
    })?;
    if contains(&bytes, b"PRIVATE KEY") {
        return Err(format!(
            "file {shown} holds a private key: an edge node needs only the public key; \
             extract it with `openssl pkey -in {shown} -pubout`"
        ));
    }
    let parsed = match algorithm.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&bytes),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&bytes),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&bytes),
        AlgorithmFamily::Hmac => {
            return Err(format!(
                "{algorithm:?} takes a shared secret, not a public key file: use secret_file \
                 or secret_env, or pick the algorithm that matches {shown}"
            ));
        }
    };
    parsed.map_err(|e| {
        format!(
            "file {shown} is not a PEM public {} for {algorithm:?} ({e}): give a \
             `BEGIN PUBLIC KEY` file of that type",
            key_kind(algorithm).trim_start_matches("an ")
        )
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
