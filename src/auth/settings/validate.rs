//! `auth:` checked: [`AuthConfig::from_section`] turns the section as written
//! ([`AuthSettings`]) into the validated configuration the verifier is built from. Every key
//! and file is loaded here, relative paths resolve against the configuration file's folder,
//! and every problem is reported, each naming its setting and the fix, not only the first.

use std::path::{Path, PathBuf};

use http::HeaderName;

use super::{
    Audience, AuthSettings, KeySettings, MAX_LEEWAY_SECONDS, MAX_MAX_LIFETIME_SECONDS,
    MAX_MAX_TOKEN_BYTES, MAX_REPLAY_CACHE_ENTRIES, MAX_VERIFIED_CACHE_ENTRIES, TokenSource,
};
use crate::auth::claims::{AudienceRule, ClaimPolicy};
use crate::auth::client_addr::ClientAddress;
use crate::auth::denylist::Denylist;
use crate::auth::key::VerifyKey;
use crate::auth::keys::{EnvLookup, load_keys};
use crate::auth::public::PublicPrefixes;
use crate::auth::renewal::RenewalKey;
use crate::auth::sources::check_sources;
use crate::config::Problem;

/// The `auth:` section checked, its keys and files loaded: what
/// [`Verifier::new`](crate::auth::Verifier::new) is built from.
#[derive(Debug)]
pub(crate) struct AuthConfig {
    /// `auth.keys` as written: the key store fetches the `jwks_url` entries.
    pub key_entries: Vec<KeySettings>,
    /// The keys of the other entries, loaded.
    pub keys: Vec<VerifyKey>,
    /// The configuration file's folder.
    pub base_dir: PathBuf,
    pub policy: ClaimPolicy,
    pub max_token_bytes: usize,
    pub public: PublicPrefixes,
    pub token_sources: Vec<TokenSource>,
    pub scope_claim: Option<String>,
    pub allow_unscoped: bool,
    pub denylist: Denylist,
    pub verified_cache_entries: usize,
    pub client_address: ClientAddress,
    /// `auth.replay_cache_entries` when `auth.replay_protection` is on.
    pub replay_cache_entries: Option<usize>,
    pub renewal_key: Option<RenewalKey>,
    pub renewal_header: HeaderName,
    /// The cookie renewed tokens are set in (`cdnistt` 1): the first `cookie:` source.
    pub renewal_cookie: Option<String>,
    pub uri_scheme: String,
}

impl AuthConfig {
    /// Checks every setting of the section and loads every key and file; `env` reads the
    /// environment. Returns every problem found, not only the first.
    pub(crate) fn from_section(
        settings: &AuthSettings,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<AuthConfig, Vec<Problem>> {
        let mut problems = Vec::new();
        check_sources(&settings.token_sources, &mut problems);
        let keys = load_keys(&settings.keys, base_dir, env, &mut problems);
        if settings.issuer.as_deref() == Some("") {
            problems.push(Problem::new(
                "auth.issuer",
                "is empty: give the expected value or remove `issuer`",
            ));
        }
        let audience = audience_rule(settings, &mut problems);
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
        check_range(
            &mut problems,
            "auth.max_token_bytes",
            settings.max_token_bytes as u64,
            MAX_MAX_TOKEN_BYTES as u64,
            "",
        );
        let public = PublicPrefixes::new(&settings.public_prefixes, &mut problems);
        check_range(
            &mut problems,
            "auth.max_lifetime_seconds",
            settings.max_lifetime_seconds,
            MAX_MAX_LIFETIME_SECONDS,
            " (31 days)",
        );
        if settings.scope_claim.as_deref() == Some("") {
            problems.push(Problem::new(
                "auth.scope_claim",
                "is empty: name the claim that lists the token's path patterns, or remove it",
            ));
        }
        if settings.verified_cache_entries > MAX_VERIFIED_CACHE_ENTRIES {
            problems.push(Problem::new(
                "auth.verified_cache_entries",
                format!(
                    "{} is too many: give 0 (off) to {MAX_VERIFIED_CACHE_ENTRIES}",
                    settings.verified_cache_entries
                ),
            ));
        }
        let denylist_path = settings.denylist_file.as_ref().map(|p| base_dir.join(p));
        let denylist = match Denylist::load(denylist_path.as_deref()) {
            Ok(list) => list,
            Err(message) => {
                problems.push(Problem::new("auth.denylist_file", message));
                Denylist::default()
            }
        };
        let client_address = ClientAddress::new(&settings.client_address, &mut problems);
        check_range(
            &mut problems,
            "auth.replay_cache_entries",
            settings.replay_cache_entries as u64,
            MAX_REPLAY_CACHE_ENTRIES as u64,
            "",
        );
        let renewal_header = match HeaderName::from_bytes(settings.renewal_header.as_bytes()) {
            Ok(name) if name != http::header::SET_COOKIE => name,
            _ => {
                problems.push(Problem::new(
                    "auth.renewal_header",
                    format!(
                        "\"{}\" is not a usable response header name: write one such as \
                         x-cdni-token",
                        settings.renewal_header
                    ),
                ));
                HeaderName::from_static("x-cdni-token")
            }
        };
        if !matches!(settings.uri_scheme.as_str(), "http" | "https") {
            problems.push(Problem::new(
                "auth.uri_scheme",
                format!(
                    "\"{}\" is not a scheme clients use here: write http or https",
                    settings.uri_scheme
                ),
            ));
        }
        let has_key_urls = settings.keys.iter().any(|k| k.jwks_url.is_some());
        let renewal_key = settings.renewal_key.as_ref().and_then(|renewal| {
            RenewalKey::load(renewal, base_dir, env, &keys, has_key_urls, &mut problems)
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(AuthConfig {
            key_entries: settings.keys.clone(),
            keys,
            base_dir: base_dir.to_path_buf(),
            policy: ClaimPolicy {
                issuer: settings.issuer.clone(),
                audience,
                require_exp: settings.require_exp,
                leeway: settings.leeway_seconds,
                max_lifetime: settings.max_lifetime_seconds,
            },
            max_token_bytes: settings.max_token_bytes,
            public,
            token_sources: settings.token_sources.clone(),
            scope_claim: settings.scope_claim.clone(),
            allow_unscoped: settings.allow_unscoped_tokens,
            denylist,
            verified_cache_entries: settings.verified_cache_entries,
            client_address,
            replay_cache_entries: settings
                .replay_protection
                .then_some(settings.replay_cache_entries),
            renewal_key,
            renewal_header,
            renewal_cookie: settings.token_sources.iter().find_map(|s| match s {
                TokenSource::Cookie(name) => Some(name.clone()),
                _ => None,
            }),
            uri_scheme: settings.uri_scheme.clone(),
        })
    }
}

/// `auth.audience` and `auth.ignore_audience` as one rule: a list of identities, none (a
/// token carrying `aud` is then refused), or `aud` ignored. Both set is a problem.
fn audience_rule(settings: &AuthSettings, problems: &mut Vec<Problem>) -> AudienceRule {
    let Some(audience) = &settings.audience else {
        return if settings.ignore_audience {
            AudienceRule::Ignored
        } else {
            AudienceRule::Unset
        };
    };
    if settings.ignore_audience {
        problems.push(Problem::new(
            "auth.audience",
            "is set together with auth.ignore_audience: true, which accepts any `aud`: keep \
             `audience` to accept only tokens meant for this node, or remove it to accept \
             every `aud`, not both",
        ));
    }
    let values = audience.values();
    if values.is_empty() {
        problems.push(Problem::new(
            "auth.audience",
            "is an empty list: give this node's identity (or several), or remove `audience`",
        ));
    }
    for (i, value) in values.iter().enumerate() {
        if value.is_empty() {
            let key = match audience {
                Audience::One(_) => "auth.audience".to_owned(),
                Audience::Many(_) => format!("auth.audience[{i}]"),
            };
            problems.push(Problem::new(
                key,
                "is empty: give this node's identity, as tokens carry it in `aud`, or remove it",
            ));
        }
    }
    AudienceRule::OneOf(values.to_vec())
}

/// Reports `key` unless `value` is from 1 to `max`; `note` follows the
/// bound in the message (e.g. " (31 days)").
fn check_range(problems: &mut Vec<Problem>, key: &str, value: u64, max: u64, note: &str) {
    if value == 0 || value > max {
        problems.push(Problem::new(
            key,
            format!("{value} is out of range: give 1 to {max}{note}"),
        ));
    }
}

/// Lets tests build a verifier with a fake environment.
#[cfg(test)]
pub(crate) fn with_env(
    settings: &AuthSettings,
    base_dir: &Path,
    vars: &[(&str, &str)],
) -> Result<crate::auth::Verifier, Vec<Problem>> {
    use std::ffi::OsString;
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    AuthConfig::from_section(settings, base_dir, &|name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .map(crate::auth::Verifier::new)
}
