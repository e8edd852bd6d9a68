//! Turns `auth.keys` into loaded keys, reporting every problem with its setting's path.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::auth::algorithm::{self, ALGORITHM_NAMES, is_hmac};
use crate::auth::jwks::read_jwks;
use crate::auth::key::VerifyKey;
use crate::auth::pem::read_public_key;
use crate::auth::secret::{check_secret, read_secret_file};
use crate::auth::settings::KeySettings;
use crate::config::Problem;

/// Looks up an environment variable (injected so tests need not touch the process env).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Loads every entry. Keys that load are returned even when others fail; the caller refuses
/// the whole configuration if `problems` is not empty.
pub(crate) fn load_keys(
    entries: &[KeySettings],
    base_dir: &Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<VerifyKey> {
    if entries.is_empty() {
        problems.push(Problem::new(
            "auth.keys",
            "no key is configured: add at least one entry with an algorithm and one of \
             secret_file, secret_env, public_key_file, jwks_file",
        ));
    }
    let mut keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("auth.keys[{i}]");
        if entry.issuer.as_deref() == Some("") {
            problems.push(Problem::new(
                format!("{at}.issuer"),
                "is empty: give the `iss` of this key's tokens or remove `issuer`",
            ));
        }
        let mut loaded = load_entry(&at, entry, base_dir, env, problems);
        for key in &mut loaded {
            key.issuer = entry.issuer.clone();
        }
        keys.extend(loaded);
    }
    check_unique_kids(&keys, problems);
    keys
}

fn load_entry(
    at: &str,
    entry: &KeySettings,
    base_dir: &Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<VerifyKey> {
    let before = problems.len();
    let set: Vec<&str> = [
        ("secret_file", entry.secret_file.is_some()),
        ("secret_env", entry.secret_env.is_some()),
        ("public_key_file", entry.public_key_file.is_some()),
        ("jwks_file", entry.jwks_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match set.as_slice() {
        [_] => {}
        [] => problems.push(Problem::new(
            at,
            "no key material: set one of secret_file, secret_env, public_key_file, jwks_file",
        )),
        many => problems.push(Problem::new(
            at,
            format!("sets {}: keep exactly one of them", many.join(" and ")),
        )),
    }
    if let Some(kid) = &entry.kid {
        if kid.is_empty() {
            problems.push(Problem::new(
                format!("{at}.kid"),
                "is empty: give a name or remove `kid`",
            ));
        } else if entry.jwks_file.is_some() {
            problems.push(Problem::new(
                format!("{at}.kid"),
                format!(
                    "\"{kid}\" is given for a jwks_file: each JWK carries its own `kid`; remove it"
                ),
            ));
        }
    }
    let algorithm = match &entry.algorithm {
        Some(name) => match algorithm::parse(name) {
            Some(alg) => Some(alg),
            None => {
                problems.push(Problem::new(
                    format!("{at}.algorithm"),
                    format!(
                        "\"{name}\" is not a supported algorithm: use one of {ALGORITHM_NAMES}"
                    ),
                ));
                return Vec::new();
            }
        },
        None if entry.jwks_file.is_some() => None,
        None => {
            problems.push(Problem::new(
                format!("{at}.algorithm"),
                format!("is missing: name the one algorithm this key accepts ({ALGORITHM_NAMES})"),
            ));
            return Vec::new();
        }
    };
    if problems.len() != before {
        return Vec::new();
    }
    let resolve = |p: &PathBuf| base_dir.join(p);
    let kid = entry.kid.clone();
    if let Some(path) = &entry.jwks_file {
        let (keys, messages) = read_jwks(&resolve(path), algorithm);
        for message in messages {
            problems.push(Problem::new(format!("{at}.jwks_file"), message));
        }
        return keys;
    }
    let Some(algorithm) = algorithm else {
        return Vec::new();
    };
    let loaded = if let Some(path) = &entry.secret_file {
        hmac_only(at, algorithm, "secret_file")
            .and_then(|()| {
                read_secret_file(&resolve(path))
                    .map_err(|m| Problem::new(format!("{at}.secret_file"), m))
            })
            .map(|secret| DecodingKey::from_secret(&secret))
    } else if let Some(name) = &entry.secret_env {
        hmac_only(at, algorithm, "secret_env")
            .and_then(|()| {
                secret_from_env(name, env).map_err(|m| Problem::new(format!("{at}.secret_env"), m))
            })
            .map(|secret| DecodingKey::from_secret(&secret))
    } else if let Some(path) = &entry.public_key_file {
        read_public_key(&resolve(path), algorithm)
            .map_err(|m| Problem::new(format!("{at}.public_key_file"), m))
    } else {
        return Vec::new();
    };
    match loaded {
        Ok(key) => vec![VerifyKey::new(kid, algorithm, key)],
        Err(problem) => {
            problems.push(problem);
            Vec::new()
        }
    }
}

fn hmac_only(at: &str, algorithm: Algorithm, field: &str) -> Result<(), Problem> {
    if is_hmac(algorithm) {
        Ok(())
    } else {
        Err(Problem::new(
            format!("{at}.algorithm"),
            format!(
                "{algorithm:?} needs {} in public_key_file, but this key gives {field}: \
                 use HS256, HS384 or HS512 with a secret",
                algorithm::key_kind(algorithm)
            ),
        ))
    }
}

fn secret_from_env(name: &str, env: EnvLookup<'_>) -> Result<Vec<u8>, String> {
    if name.is_empty() {
        return Err("is empty: name the environment variable that holds the secret".to_owned());
    }
    let value = env(name).ok_or_else(|| {
        format!("environment variable {name} is not set: export it, or use secret_file")
    })?;
    let secret = value.into_encoded_bytes();
    check_secret(&secret, &format!("environment variable {name}"))?;
    Ok(secret)
}

fn check_unique_kids(keys: &[VerifyKey], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for key in keys {
        if let Some(kid) = key.kid.as_deref() {
            *seen.entry(kid).or_default() += 1;
        }
    }
    let mut repeated: Vec<&str> = seen
        .into_iter()
        .filter_map(|(kid, n)| (n > 1).then_some(kid))
        .collect();
    repeated.sort_unstable();
    for kid in repeated {
        problems.push(Problem::new(
            "auth.keys",
            format!("kid \"{kid}\" is given to more than one key: make each kid unique"),
        ));
    }
}
