//! Turns `auth.keys` into loaded keys, reporting every problem with its setting's path.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::auth::algorithm::{self, ALGORITHM_NAMES, is_hmac};
use crate::auth::jwks::read_jwks;
use crate::auth::jwks_url::JwksUrl;
use crate::auth::key::VerifyKey;
use crate::auth::pem::read_public_key;
use crate::auth::secret::{check_secret, read_secret_file};
use crate::auth::settings::{KeySettings, MIN_JWKS_REFRESH_SECONDS};
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
        ("jwks_url", entry.jwks_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match set.as_slice() {
        [_] => {}
        [] => problems.push(Problem::new(
            at,
            "no key material: set one of secret_file, secret_env, public_key_file, jwks_file, \
             jwks_url",
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
        } else if entry.jwks_file.is_some() || entry.jwks_url.is_some() {
            problems.push(Problem::new(
                format!("{at}.kid"),
                format!("\"{kid}\" is given for a JWKS: each JWK carries its own `kid`; remove it"),
            ));
        }
    }
    check_url_settings(at, entry, problems);
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
        None if entry.jwks_file.is_some() || entry.jwks_url.is_some() => None,
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
    if entry.jwks_url.is_some() {
        // Fetched by the reloader once the node runs.
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

/// `jwks_url` and the settings that only go with it.
fn check_url_settings(at: &str, entry: &KeySettings, problems: &mut Vec<Problem>) {
    match &entry.jwks_url {
        Some(url) => {
            if let Err(message) = JwksUrl::parse(url) {
                problems.push(Problem::new(format!("{at}.jwks_url"), message));
            }
            if let Some(secs) = entry.refresh_seconds
                && secs < MIN_JWKS_REFRESH_SECONDS
            {
                problems.push(Problem::new(
                    format!("{at}.refresh_seconds"),
                    format!("{secs} is too short: give at least {MIN_JWKS_REFRESH_SECONDS}"),
                ));
            }
            if let Some(ms) = entry.min_fetch_interval_ms
                && ms > 60_000
            {
                problems.push(Problem::new(
                    format!("{at}.min_fetch_interval_ms"),
                    format!("{ms} is too long: give 0 to 60000"),
                ));
            }
        }
        None => {
            for (name, set) in [
                ("refresh_seconds", entry.refresh_seconds.is_some()),
                (
                    "min_fetch_interval_ms",
                    entry.min_fetch_interval_ms.is_some(),
                ),
            ] {
                if set {
                    problems.push(Problem::new(
                        format!("{at}.{name}"),
                        "only applies to a jwks_url: remove it or add jwks_url",
                    ));
                }
            }
        }
    }
}

/// Loads the file and environment entries again (a file changed, or SIGHUP): all of them
/// or none, with the problems in one message.
pub(crate) fn load_keys_quietly(
    entries: &[KeySettings],
    base_dir: &Path,
) -> Result<Vec<VerifyKey>, String> {
    let mut problems = Vec::new();
    let mut keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut loaded = load_entry(
            &format!("auth.keys[{i}]"),
            entry,
            base_dir,
            &|name| std::env::var_os(name),
            &mut problems,
        );
        for key in &mut loaded {
            key.issuer = entry.issuer.clone();
        }
        keys.extend(loaded);
    }
    check_unique_kids(&keys, &mut problems);
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
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

pub(crate) fn secret_from_env(name: &str, env: EnvLookup<'_>) -> Result<Vec<u8>, String> {
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
