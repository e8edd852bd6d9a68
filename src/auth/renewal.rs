//! Signed token renewal (RFC 9246 `cdniets`, `cdnistt`, `cdnistd`).
//!
//! A token carrying `cdniets` and `cdnistt` that opens a request is answered with a renewed
//! token: the same claims, `iat` now and `exp` now plus `cdniets`, signed with
//! `auth.renewal_key` (whose `kid` names the key of `auth.keys` that verifies it). When
//! replay protection is on, the renewed token gets a fresh random `jti` (it could not be
//! used otherwise); revoke a renewed chain by `sub` then. Without a renewal key such tokens
//! are accepted and not renewed.
//!
//! - `cdnistt` 1: `Set-Cookie: NAME=TOKEN; Path=P; Max-Age=cdniets; HttpOnly` (plus `Secure`
//!   when `auth.uri_scheme` is https), NAME being the first `cookie:` token source (no
//!   renewal when none is configured) and P the first `cdnistd` folders of the request path.
//! - `cdnistt` 2: the token alone in the `auth.renewal_header` response header. (RFC 9246
//!   means the query string here; the node cannot rewrite the URIs a client will ask for, so
//!   it hands the token over and the client sends it back in any configured token source.)

use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::auth::algorithm::{self, ALGORITHM_NAMES, is_hmac};
use crate::auth::key::VerifyKey;
use crate::auth::keys::{EnvLookup, secret_from_env};
use crate::auth::mint::read_signing_key;
use crate::auth::secret::read_secret_file;
use crate::auth::settings::RenewalKeySettings;
use crate::config::Problem;

/// A renewed token, ready to be added to the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    /// `set-cookie` or `auth.renewal_header`.
    pub name: HeaderName,
    pub value: String,
}

/// The key renewed tokens are signed with. `Debug` shows no key material.
pub(crate) struct RenewalKey {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    random: SystemRandom,
}

impl std::fmt::Debug for RenewalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewalKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

const AT: &str = "auth.renewal_key";

impl RenewalKey {
    /// Loads `auth.renewal_key` and checks that a key of `auth.keys` with its `kid` verifies
    /// what it signs (when keys come from JWKS URLs the `kid` may be unknown until they are
    /// fetched).
    pub fn load(
        settings: &RenewalKeySettings,
        base_dir: &Path,
        env: EnvLookup<'_>,
        verify_keys: &[VerifyKey],
        has_key_urls: bool,
        problems: &mut Vec<Problem>,
    ) -> Option<RenewalKey> {
        let before = problems.len();
        let kid = match settings.kid.as_deref() {
            Some(kid) if !kid.is_empty() => kid.to_owned(),
            _ => {
                problems.push(Problem::new(
                    format!("{AT}.kid"),
                    "is missing: name the key of auth.keys that verifies renewed tokens",
                ));
                String::new()
            }
        };
        let algorithm = match settings.algorithm.as_deref().map(algorithm::parse) {
            Some(Some(alg)) => Some(alg),
            Some(None) | None => {
                problems.push(Problem::new(
                    format!("{AT}.algorithm"),
                    format!("is missing or not supported: use one of {ALGORITHM_NAMES}"),
                ));
                None
            }
        };
        let set: Vec<&str> = [
            ("secret_file", settings.secret_file.is_some()),
            ("secret_env", settings.secret_env.is_some()),
            ("private_key_file", settings.private_key_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if set.len() != 1 {
            problems.push(Problem::new(
                AT,
                "give exactly one of secret_file, secret_env (HMAC) or private_key_file (PEM)",
            ));
        }
        let algorithm = algorithm?;
        if problems.len() != before {
            return None;
        }
        let loaded = if let Some(path) = &settings.secret_file {
            hmac_only(algorithm, "secret_file").and_then(|()| {
                read_secret_file(&base_dir.join(path))
                    .map(|s| EncodingKey::from_secret(&s))
                    .map_err(|m| Problem::new(format!("{AT}.secret_file"), m))
            })
        } else if let Some(name) = &settings.secret_env {
            hmac_only(algorithm, "secret_env").and_then(|()| {
                secret_from_env(name, env)
                    .map(|s| EncodingKey::from_secret(&s))
                    .map_err(|m| Problem::new(format!("{AT}.secret_env"), m))
            })
        } else if let Some(path) = &settings.private_key_file {
            if is_hmac(algorithm) {
                Err(Problem::new(
                    format!("{AT}.private_key_file"),
                    format!("{algorithm:?} takes a secret: use secret_file or secret_env"),
                ))
            } else {
                read_signing_key(&base_dir.join(path), algorithm)
                    .map_err(|m| Problem::new(format!("{AT}.private_key_file"), m))
            }
        } else {
            return None;
        };
        let key = match loaded {
            Ok(key) => RenewalKey {
                kid,
                algorithm,
                key,
                random: SystemRandom::new(),
            },
            Err(problem) => {
                problems.push(problem);
                return None;
            }
        };
        key.check_pairing(verify_keys, has_key_urls, problems);
        Some(key)
    }

    /// A probe token signed with this key must verify with the key of the same `kid`.
    fn check_pairing(
        &self,
        verify_keys: &[VerifyKey],
        has_key_urls: bool,
        problems: &mut Vec<Problem>,
    ) {
        let Some(verify) = verify_keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(self.kid.as_str()))
        else {
            if !has_key_urls {
                problems.push(Problem::new(
                    format!("{AT}.kid"),
                    format!(
                        "\"{}\" names no key of auth.keys: add the key that verifies renewed \
                         tokens with this kid",
                        self.kid
                    ),
                ));
            }
            return;
        };
        let probe = self.sign_claims(&Map::new());
        let verifies = verify.algorithm == self.algorithm
            && probe.is_ok_and(|token| {
                jsonwebtoken::decode::<Map<String, Value>>(&token, &verify.key, &verify.validation)
                    .is_ok()
            });
        if !verifies {
            problems.push(Problem::new(
                AT,
                format!(
                    "tokens it signs do not verify with the auth.keys entry of kid \"{}\": give \
                     the same algorithm and the matching secret or key pair",
                    self.kid
                ),
            ));
        }
    }

    /// The renewed token for verified `claims`: `iat` now, `exp` now plus `ets`, and a fresh
    /// `jti` when `fresh_jti` and the token has one.
    pub fn renew(
        &self,
        claims: &Map<String, Value>,
        ets: u64,
        now: u64,
        fresh_jti: bool,
    ) -> Result<String, String> {
        let mut claims = claims.clone();
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), now.saturating_add(ets).into());
        if fresh_jti && claims.contains_key("jti") {
            let mut bytes = [0u8; 16];
            self.random
                .fill(&mut bytes)
                .map_err(|_| "no random bytes for a jti".to_owned())?;
            claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(bytes).into());
        }
        self.sign_claims(&claims)
    }

    fn sign_claims(&self, claims: &Map<String, Value>) -> Result<String, String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| format!("signing: {e}"))
    }
}

fn hmac_only(algorithm: Algorithm, field: &str) -> Result<(), Problem> {
    if is_hmac(algorithm) {
        Ok(())
    } else {
        Err(Problem::new(
            format!("{AT}.{field}"),
            format!("{algorithm:?} signs with a private key: use private_key_file"),
        ))
    }
}

/// The `Set-Cookie` value carrying a renewed token.
pub(crate) fn set_cookie(
    name: &str,
    token: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> String {
    let mut value = format!("{name}={token}; Path={path}; Max-Age={max_age}; HttpOnly");
    if secure {
        value.push_str("; Secure");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_table() {
        assert_eq!(
            set_cookie("jwt", "a.b.c", "/courses/", 30, false),
            "jwt=a.b.c; Path=/courses/; Max-Age=30; HttpOnly"
        );
        assert_eq!(
            set_cookie("t", "a.b.c", "/", 5, true),
            "t=a.b.c; Path=/; Max-Age=5; HttpOnly; Secure"
        );
    }
}
