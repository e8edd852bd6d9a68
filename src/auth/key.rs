//! One verification key, ready for use: its optional `kid`, its pinned algorithm and the
//! jsonwebtoken validation that goes with it.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// A loaded key. `Debug` shows no key material.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    /// The `iss` tokens verified with this key must carry, when it differs from `auth.issuer`.
    pub issuer: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
    pub validation: Validation,
}

impl VerifyKey {
    pub fn new(kid: Option<String>, algorithm: Algorithm, key: DecodingKey) -> Self {
        VerifyKey {
            kid,
            issuer: None,
            algorithm,
            key,
            validation: signature_only(algorithm),
        }
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A validation that checks the signature with exactly `algorithm` and nothing else: claim
/// checks are ours (see `claims.rs`), made against the caller's clock.
fn signature_only(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}
