//! The verifier built from `auth:` at start-up: keys loaded, policy fixed.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use crate::auth::claims::{ClaimPolicy, Claims};
use crate::auth::header::read_header;
use crate::auth::key::VerifyKey;
use crate::auth::keys::{EnvLookup, load_keys};
use crate::auth::public::PublicPrefixes;
use crate::auth::reject::Reject;
use crate::auth::settings::{AuthSettings, MAX_LEEWAY_SECONDS, MAX_MAX_TOKEN_BYTES, TokenSource};
use crate::auth::sources::check_sources;
use crate::config::Problem;

/// Verifies tokens against the configured keys and claim policy.
#[derive(Debug)]
pub struct Verifier {
    keys: Vec<VerifyKey>,
    policy: ClaimPolicy,
    max_token_bytes: usize,
    public: PublicPrefixes,
    token_sources: Vec<TokenSource>,
}

impl Verifier {
    /// Loads every key and checks every setting; relative paths resolve against `base_dir`
    /// (the configuration file's folder). Returns every problem found, not only the first.
    pub fn from_settings(
        settings: &AuthSettings,
        base_dir: &Path,
    ) -> Result<Verifier, Vec<Problem>> {
        Self::from_settings_with_env(settings, base_dir, &|name| std::env::var_os(name))
    }

    pub(crate) fn from_settings_with_env(
        settings: &AuthSettings,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Verifier, Vec<Problem>> {
        let mut problems = Vec::new();
        check_sources(&settings.token_sources, &mut problems);
        let keys = load_keys(&settings.keys, base_dir, env, &mut problems);
        for (name, value) in [
            ("issuer", &settings.issuer),
            ("audience", &settings.audience),
        ] {
            if value.as_deref() == Some("") {
                problems.push(Problem::new(
                    format!("auth.{name}"),
                    format!("is empty: give the expected value or remove `{name}`"),
                ));
            }
        }
        if settings.leeway_seconds > MAX_LEEWAY_SECONDS {
            problems.push(Problem::new(
                "auth.leeway_seconds",
                format!(
                    "{} is more than {MAX_LEEWAY_SECONDS}: fix the clocks instead, and give at \
                     most {MAX_LEEWAY_SECONDS}",
                    settings.leeway_seconds
                ),
            ));
        }
        if settings.max_token_bytes == 0 || settings.max_token_bytes > MAX_MAX_TOKEN_BYTES {
            problems.push(Problem::new(
                "auth.max_token_bytes",
                format!(
                    "{} is out of range: give 1 to {MAX_MAX_TOKEN_BYTES}",
                    settings.max_token_bytes
                ),
            ));
        }
        let public = PublicPrefixes::new(&settings.public_prefixes, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Verifier {
            keys,
            policy: ClaimPolicy {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                require_exp: settings.require_exp,
                leeway: settings.leeway_seconds,
            },
            max_token_bytes: settings.max_token_bytes,
            public,
            token_sources: settings.token_sources.clone(),
        })
    }

    /// Where requests carry their token, in order.
    pub fn token_sources(&self) -> &[TokenSource] {
        &self.token_sources
    }

    /// True when `canonical_path` is under a public prefix and needs no token.
    pub fn is_public(&self, canonical_path: &str) -> bool {
        self.public.contains(canonical_path)
    }

    /// Verifies `token` at time `now_unix` (seconds). The size is checked before any parsing;
    /// the key is chosen by `kid` among configured keys only, or by the header's algorithm
    /// when there is no `kid`; the algorithm must be the key's pinned one.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, Reject> {
        if token.len() > self.max_token_bytes {
            return Err(Reject::TooLarge);
        }
        let header = read_header(token)?;
        let mut candidates = self.candidates(header.kid.as_deref(), header.alg)?;
        let claims = loop {
            let Some(key) = candidates.next() else {
                return Err(Reject::BadSignature);
            };
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation) {
                Ok(data) => break data.claims,
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(map_error(e.kind())),
            }
        };
        self.policy.check(claims, now_unix)
    }

    /// The keys to try, in configuration order.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: jsonwebtoken::Algorithm,
    ) -> Result<impl Iterator<Item = &'a VerifyKey>, Reject> {
        match kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or(Reject::UnknownKey)?;
                if key.algorithm != alg {
                    return Err(Reject::WrongAlgorithm);
                }
                Ok(Candidates::One(Some(key)))
            }
            None => {
                if !self.keys.iter().any(|k| k.algorithm == alg) {
                    return Err(Reject::WrongAlgorithm);
                }
                Ok(Candidates::Pinned(self.keys.iter(), alg))
            }
        }
    }
}

/// Keys to try: the one named by `kid`, or every key pinned to the header's algorithm.
enum Candidates<'a> {
    One(Option<&'a VerifyKey>),
    Pinned(std::slice::Iter<'a, VerifyKey>, jsonwebtoken::Algorithm),
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a VerifyKey;

    fn next(&mut self) -> Option<&'a VerifyKey> {
        match self {
            Candidates::One(key) => key.take(),
            Candidates::Pinned(keys, alg) => keys.find(|k| k.algorithm == *alg),
        }
    }
}

fn map_error(kind: &ErrorKind) -> Reject {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Reject::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => Reject::WrongAlgorithm,
        _ => Reject::Malformed,
    }
}

/// Lets tests build a verifier with a fake environment.
#[cfg(test)]
pub(crate) fn with_env(
    settings: &AuthSettings,
    base_dir: &Path,
    vars: &[(&str, &str)],
) -> Result<Verifier, Vec<Problem>> {
    use std::ffi::OsString;
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    Verifier::from_settings_with_env(settings, base_dir, &|name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}
