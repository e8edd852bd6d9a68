//! Algorithm names as written in configuration and in token headers.

use jsonwebtoken::{Algorithm, AlgorithmFamily};

/// The names accepted in `auth.keys[].algorithm`, for messages.
pub const ALGORITHM_NAMES: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// Parses an algorithm name exactly as RFC 7518 spells it (case-sensitive).
/// `none`, in any casing, is never an algorithm here.
pub fn parse(name: &str) -> Option<Algorithm> {
    if name.eq_ignore_ascii_case("none") {
        return None;
    }
    name.parse().ok()
}

/// True for the HMAC algorithms, whose key is a shared secret.
pub fn is_hmac(alg: Algorithm) -> bool {
    alg.family() == AlgorithmFamily::Hmac
}

/// What kind of key file an algorithm needs, for messages.
pub fn key_kind(alg: Algorithm) -> &'static str {
    match alg.family() {
        AlgorithmFamily::Hmac => "an HMAC secret",
        AlgorithmFamily::Rsa => "an RSA key",
        AlgorithmFamily::Ec => "an EC key",
        AlgorithmFamily::Ed => "an Ed25519 key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<Algorithm>)] = &[
            ("HS256", Some(Algorithm::HS256)),
            ("RS512", Some(Algorithm::RS512)),
            ("PS384", Some(Algorithm::PS384)),
            ("ES384", Some(Algorithm::ES384)),
            ("EdDSA", Some(Algorithm::EdDSA)),
            ("hs256", None),
            ("EDDSA", None),
            ("ES512", None),
            ("none", None),
            ("None", None),
            ("NONE", None),
            ("nOnE", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse(name), *want, "{name}");
        }
    }
}
