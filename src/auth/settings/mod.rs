//! The `auth:` section of the configuration file, as written.
//!
//! Parsing only checks shape (`deny_unknown_fields`). Then, as for every section:
//! [`AuthSettings`] (the section as written) -> `AuthConfig` (values checked, keys and
//! files loaded, every problem reported at once; see `validate`) -> [`Verifier`] (the
//! runtime type). [`Verifier::from_settings`] takes both steps.
//!
//! [`Verifier`]: crate::auth::Verifier
//! [`Verifier::from_settings`]: crate::auth::Verifier::from_settings

mod validate;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Problem;

pub(crate) use validate::AuthConfig;
#[cfg(test)]
pub(crate) use validate::with_env;

/// Default `leeway_seconds`: clock skew allowed on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 5;
/// Largest accepted `leeway_seconds`.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// Default `max_token_bytes`: longer tokens are refused before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Largest accepted `max_token_bytes`.
pub const MAX_MAX_TOKEN_BYTES: usize = 65536;
/// Default `require_exp`.
pub const DEFAULT_REQUIRE_EXP: bool = true;
/// Shortest HMAC secret accepted, in bytes.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Default `max_lifetime_seconds`: the longest `exp - iat` accepted, and how far in the future
/// `exp` may be.
pub const DEFAULT_MAX_LIFETIME_SECONDS: u64 = 24 * 3600;
/// Largest accepted `max_lifetime_seconds` (31 days).
pub const MAX_MAX_LIFETIME_SECONDS: u64 = 31 * 24 * 3600;
/// Default `allow_unscoped_tokens`: with `scope_claim` set, a token without it is refused.
pub const DEFAULT_ALLOW_UNSCOPED_TOKENS: bool = false;
/// Default `verified_cache_entries`: verified tokens remembered (0 turns the cache off).
pub const DEFAULT_VERIFIED_CACHE_ENTRIES: usize = 10_000;
/// Largest accepted `verified_cache_entries`.
pub const MAX_VERIFIED_CACHE_ENTRIES: usize = 1_000_000;
/// Default `replay_cache_entries`: `jti` values remembered when `replay_protection` is on.
pub const DEFAULT_REPLAY_CACHE_ENTRIES: usize = 100_000;
/// Largest accepted `replay_cache_entries`.
pub const MAX_REPLAY_CACHE_ENTRIES: usize = 10_000_000;
/// Default `renewal_header`: the response header carrying a renewed token (`cdnistt` 2).
pub const DEFAULT_RENEWAL_HEADER: &str = "x-cdni-token";
/// Default `uri_scheme`: the scheme of the URI `cdniuc` is checked against.
pub const DEFAULT_URI_SCHEME: &str = "http";
/// Default `keys[].refresh_seconds` for a `jwks_url`.
pub const DEFAULT_JWKS_REFRESH_SECONDS: u64 = 300;
/// Smallest accepted `keys[].refresh_seconds`.
pub const MIN_JWKS_REFRESH_SECONDS: u64 = 1;
/// Default `keys[].min_fetch_interval_ms`: at most one fetch of a `jwks_url` per interval,
/// whatever asks for it (unknown `kid`s included).
pub const DEFAULT_JWKS_MIN_FETCH_INTERVAL_MS: u64 = 1_000;

/// Where a request may carry its token. Written `{query: jwt}`, `{header: authorization}` or
/// `{cookie: jwt}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SourceEntry", into = "SourceEntry")]
pub enum TokenSource {
    /// A query parameter, by exact (case-sensitive) name.
    Query(String),
    /// A header, by case-insensitive name. `authorization` takes `Bearer <token>`; any other
    /// header carries the raw token.
    Header(String),
    /// A cookie, by exact name.
    Cookie(String),
}

/// The written form of a [`TokenSource`]: a one-entry map, whatever the YAML front end does
/// with enums.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cookie: Option<String>,
}

impl TryFrom<SourceEntry> for TokenSource {
    type Error = &'static str;

    fn try_from(entry: SourceEntry) -> Result<Self, Self::Error> {
        match (entry.query, entry.header, entry.cookie) {
            (Some(name), None, None) => Ok(TokenSource::Query(name)),
            (None, Some(name), None) => Ok(TokenSource::Header(name)),
            (None, None, Some(name)) => Ok(TokenSource::Cookie(name)),
            _ => Err("a token source names exactly one of query, header, cookie"),
        }
    }
}

impl From<TokenSource> for SourceEntry {
    fn from(source: TokenSource) -> Self {
        match source {
            TokenSource::Query(name) => SourceEntry {
                query: Some(name),
                ..SourceEntry::default()
            },
            TokenSource::Header(name) => SourceEntry {
                header: Some(name),
                ..SourceEntry::default()
            },
            TokenSource::Cookie(name) => SourceEntry {
                cookie: Some(name),
                ..SourceEntry::default()
            },
        }
    }
}

/// `auth.audience`: one identity of the node, or several (a node serving two platforms, or
/// known by an old and a new name). Written as a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Every identity, in the order written.
    pub fn values(&self) -> &[String] {
        match self {
            Audience::One(one) => std::slice::from_ref(one),
            Audience::Many(many) => many,
        }
    }
}

impl From<&str> for Audience {
    fn from(one: &str) -> Self {
        Audience::One(one.to_owned())
    }
}

impl From<String> for Audience {
    fn from(one: String) -> Self {
        Audience::One(one)
    }
}

impl From<Vec<String>> for Audience {
    fn from(many: Vec<String>) -> Self {
        Audience::Many(many)
    }
}

/// Read by hand so that a wrong shape says what is expected (an untagged enum would only
/// say that no variant matched).
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Audience;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Audience, E> {
                Ok(Audience::One(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Audience, A::Error> {
                let mut many = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    many.push(one);
                }
                Ok(Audience::Many(many))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The default token sources, tried in this order.
pub fn default_token_sources() -> Vec<TokenSource> {
    vec![
        TokenSource::Query("jwt".to_owned()),
        TokenSource::Query("token".to_owned()),
        TokenSource::Header("authorization".to_owned()),
        TokenSource::Cookie("jwt".to_owned()),
    ]
}

/// One entry of `auth.keys`: exactly one of `secret_file`, `secret_env`, `public_key_file`,
/// `jwks_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Selects this key when a token's header names it. Never a path or URL.
    #[serde(default)]
    pub kid: Option<String>,
    /// The one algorithm this key accepts. Required except for `jwks_file`, where it applies
    /// to every JWK that has no `alg`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// File holding the HMAC secret (trailing newlines are not part of it).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Name of the environment variable holding the HMAC secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// PEM public key (RSA, EC or Ed25519).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// JWKS file; each JWK gives one key with its own `kid`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL (http or https), fetched at start-up, every `refresh_seconds`, and when a token
    /// names an unknown `kid`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Tokens verified with this entry's keys must carry this `iss` (instead of `auth.issuer`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// For `jwks_url`: seconds between scheduled fetches.
    #[serde(default)]
    pub refresh_seconds: Option<u64>,
    /// For `jwks_url`: the shortest time between two fetches, in milliseconds.
    #[serde(default)]
    pub min_fetch_interval_ms: Option<u64>,
}

/// The `auth:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(default = "default_token_sources")]
    pub token_sources: Vec<TokenSource>,
    #[serde(default)]
    pub keys: Vec<KeySettings>,
    /// When set, `iss` is required and must equal it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The node's identities (RFC 7519 4.1.3): when set, `aud` is required and must be, or
    /// contain, one of them. Unset: a token carrying `aud` is refused, as it names another
    /// recipient, unless `ignore_audience` is true.
    #[serde(default)]
    pub audience: Option<Audience>,
    /// Accept any `aud` (it must still be a string or a list of strings). Not together with
    /// `audience`.
    #[serde(default)]
    pub ignore_audience: bool,
    #[serde(default = "default_require_exp")]
    pub require_exp: bool,
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Canonical path prefixes that need no token; each starts with `/`.
    #[serde(default)]
    pub public_prefixes: Vec<String>,
    /// Longest accepted `exp - iat`; `exp` may also be at most this far in the future.
    #[serde(default = "default_max_lifetime_seconds")]
    pub max_lifetime_seconds: u64,
    /// Claim holding the path patterns a token opens (a string or a list of strings such as
    /// `/courses/101/*`). Unset: tokens are not scoped.
    #[serde(default)]
    pub scope_claim: Option<String>,
    /// With `scope_claim` set: whether a token without that claim opens every path.
    #[serde(default = "default_allow_unscoped_tokens")]
    pub allow_unscoped_tokens: bool,
    /// File of revoked `jti` and `sub` values (`jti VALUE` / `sub VALUE`, one a line),
    /// reloaded when it changes.
    #[serde(default)]
    pub denylist_file: Option<PathBuf>,
    /// How many verified tokens are remembered until their `exp` (0: none).
    #[serde(default = "default_verified_cache_entries")]
    pub verified_cache_entries: usize,
    /// How the client's address is found (socket address, or a trusted-proxy header chain).
    #[serde(default)]
    pub client_address: ClientAddressSettings,
    /// One-time tokens (RFC 9246 `jti`): a token whose `jti` was seen before is refused, and
    /// tokens without `jti` are refused.
    #[serde(default)]
    pub replay_protection: bool,
    /// With `replay_protection`: how many `jti` values are remembered (each until its `exp`).
    #[serde(default = "default_replay_cache_entries")]
    pub replay_cache_entries: usize,
    /// Signs renewed tokens (RFC 9246 `cdniets`/`cdnistt`). Unset: such tokens are accepted
    /// but not renewed.
    #[serde(default)]
    pub renewal_key: Option<RenewalKeySettings>,
    /// Response header carrying a renewed token when the token asks for `cdnistt` 2.
    #[serde(default = "default_renewal_header")]
    pub renewal_header: String,
    /// Scheme of the URI that `cdniuc` is matched against: `http` (the node's listeners), or
    /// `https` when a TLS terminator in front of the node is what clients see.
    #[serde(default = "default_uri_scheme")]
    pub uri_scheme: String,
}

/// `auth.renewal_key`: the key renewed tokens are signed with. Its `kid` must name a key of
/// `auth.keys` that verifies what it signs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalKeySettings {
    /// Put in the renewed token's header; names the verification key in `auth.keys`.
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub algorithm: Option<String>,
    /// HMAC secret file (HS256/384/512).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the HMAC secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// PEM private key (PKCS#8 for EC and Ed25519) for RS*, PS*, ES*, EdDSA.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

/// `auth.client_address`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAddressSettings {
    /// Header carrying the proxy chain (`x-forwarded-for` style, comma-separated).
    #[serde(default)]
    pub header: Option<String>,
    /// Addresses or CIDR blocks of proxies whose header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

fn default_max_lifetime_seconds() -> u64 {
    DEFAULT_MAX_LIFETIME_SECONDS
}

fn default_allow_unscoped_tokens() -> bool {
    DEFAULT_ALLOW_UNSCOPED_TOKENS
}

fn default_verified_cache_entries() -> usize {
    DEFAULT_VERIFIED_CACHE_ENTRIES
}

fn default_replay_cache_entries() -> usize {
    DEFAULT_REPLAY_CACHE_ENTRIES
}

fn default_renewal_header() -> String {
    DEFAULT_RENEWAL_HEADER.to_owned()
}

fn default_uri_scheme() -> String {
    DEFAULT_URI_SCHEME.to_owned()
}

fn default_require_exp() -> bool {
    DEFAULT_REQUIRE_EXP
}

fn default_leeway_seconds() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            token_sources: default_token_sources(),
            keys: Vec::new(),
            issuer: None,
            audience: None,
            ignore_audience: false,
            require_exp: DEFAULT_REQUIRE_EXP,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            public_prefixes: Vec::new(),
            max_lifetime_seconds: DEFAULT_MAX_LIFETIME_SECONDS,
            scope_claim: None,
            allow_unscoped_tokens: DEFAULT_ALLOW_UNSCOPED_TOKENS,
            denylist_file: None,
            verified_cache_entries: DEFAULT_VERIFIED_CACHE_ENTRIES,
            client_address: ClientAddressSettings::default(),
            replay_protection: false,
            replay_cache_entries: DEFAULT_REPLAY_CACHE_ENTRIES,
            renewal_key: None,
            renewal_header: DEFAULT_RENEWAL_HEADER.to_owned(),
            uri_scheme: DEFAULT_URI_SCHEME.to_owned(),
        }
    }
}

impl AuthSettings {
    /// Parses the value of the `auth:` key. On failure, names the entry at fault
    /// (`auth.keys[1]`) for every entry that does not parse, not just the first.
    pub fn from_yaml(value: serde_yaml::Value) -> Result<AuthSettings, Vec<Problem>> {
        match serde_yaml::from_value::<AuthSettings>(value.clone()) {
            Ok(settings) => Ok(settings),
            Err(whole) => Err(locate_problems(&value, &whole)),
        }
    }
}

/// Re-parses the list entries one by one to point at the bad ones.
fn locate_problems(value: &serde_yaml::Value, whole: &serde_yaml::Error) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(keys) = value.get("keys").and_then(|v| v.as_sequence()) {
        for (i, entry) in keys.iter().enumerate() {
            if let Err(e) = serde_yaml::from_value::<KeySettings>(entry.clone()) {
                problems.push(Problem::new(
                    format!("auth.keys[{i}]"),
                    format!(
                        "{e}: a key takes kid, algorithm, issuer and one of secret_file, \
                         secret_env, public_key_file, jwks_file, jwks_url (with \
                         refresh_seconds, min_fetch_interval_ms)"
                    ),
                ));
            }
        }
    }
    if let Some(audience) = value.get("audience")
        && let Err(e) = serde_yaml::from_value::<Audience>(audience.clone())
    {
        problems.push(Problem::new(
            "auth.audience",
            format!(
                "{e}: give a string or a list of strings, the node's identity as tokens carry \
                 it in `aud` (`audience: cdn-node`) or several (`audience: [cdn-a, cdn-b]`)"
            ),
        ));
    }
    if let Some(sources) = value.get("token_sources").and_then(|v| v.as_sequence()) {
        for (i, entry) in sources.iter().enumerate() {
            if let Err(e) = serde_yaml::from_value::<TokenSource>(entry.clone()) {
                problems.push(Problem::new(
                    format!("auth.token_sources[{i}]"),
                    format!("{e}: write one of `query: NAME`, `header: NAME`, `cookie: NAME`"),
                ));
            }
        }
    }
    if problems.is_empty() {
        problems.push(Problem::new(
            "auth",
            format!(
                "{whole}: the section takes token_sources, keys, issuer, audience, \
                 ignore_audience, require_exp, leeway_seconds, max_token_bytes, \
                 public_prefixes, max_lifetime_seconds, scope_claim, allow_unscoped_tokens, \
                 denylist_file, verified_cache_entries, client_address, replay_protection, \
                 replay_cache_entries, renewal_key, renewal_header, uri_scheme"
            ),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthSettings, Vec<Problem>> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| vec![Problem::new("test", e.to_string())])?;
        AuthSettings::from_yaml(value)
    }

    #[test]
    fn defaults_apply() {
        let s = parse("keys: [{algorithm: HS256, secret_env: S}]").expect("parses");
        assert_eq!(s.token_sources, default_token_sources());
        assert_eq!(s.leeway_seconds, DEFAULT_LEEWAY_SECONDS);
        assert_eq!(s.max_token_bytes, DEFAULT_MAX_TOKEN_BYTES);
        assert!(s.require_exp);
        assert_eq!(s.issuer, None);
    }

    #[test]
    fn full_section_parses() {
        let text = r#"
token_sources:
  - query: jwt
  - header: authorization
  - cookie: jwt
keys:
  - kid: "k1"
    algorithm: HS256
    secret_file: secret.txt
  - algorithm: RS256
    public_key_file: rsa.pem
  - jwks_file: keys.json
issuer: "https://learn.example"
audience: "cdn-node"
require_exp: false
leeway_seconds: 10
max_token_bytes: 4096
public_prefixes: ["/public/"]
"#;
        let s = parse(text).expect("parses");
        assert_eq!(
            s.token_sources,
            vec![
                TokenSource::Query("jwt".into()),
                TokenSource::Header("authorization".into()),
                TokenSource::Cookie("jwt".into()),
            ]
        );
        assert_eq!(s.keys.len(), 3);
        assert_eq!(s.keys[0].kid.as_deref(), Some("k1"));
        assert_eq!(s.keys[2].jwks_file, Some(PathBuf::from("keys.json")));
        assert!(!s.require_exp);
        assert_eq!(s.public_prefixes, vec!["/public/".to_owned()]);
    }

    #[test]
    fn audience_is_one_string_or_a_list() {
        let one = parse("audience: cdn-node").expect("parses");
        assert_eq!(one.audience, Some(Audience::One("cdn-node".into())));
        assert_eq!(
            one.audience.as_ref().map(Audience::values),
            Some(&["cdn-node".to_owned()][..])
        );
        assert!(!one.ignore_audience);
        let many = parse("audience: [cdn-a, \"cdn-b\"]").expect("parses");
        assert_eq!(
            many.audience,
            Some(Audience::Many(vec!["cdn-a".into(), "cdn-b".into()]))
        );
        assert!(
            parse("ignore_audience: true")
                .expect("parses")
                .ignore_audience
        );
        for text in [
            "audience: 7",
            "audience: {a: 1}",
            "audience: [a, [b]]",
            "audience: [a, 2]",
        ] {
            let problems = parse(text).expect_err(text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].key, "auth.audience", "{text}");
            assert!(
                problems[0]
                    .message
                    .contains("a string or a list of strings"),
                "{text}: {}",
                problems[0]
            );
        }
    }

    #[test]
    fn shape_problems_name_the_entry() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "keys: [{algorithm: HS256, secret_env: S}, {algorithm: HS256, secert_file: x}]",
                "auth.keys[1]",
                "secert_file",
            ),
            (
                "token_sources: [{query: jwt}, {form: jwt}]",
                "auth.token_sources[1]",
                "form",
            ),
            (
                "token_sources: [{query: jwt, cookie: jwt}]",
                "auth.token_sources[0]",
                "exactly one",
            ),
            ("leway_seconds: 3", "auth", "leway_seconds"),
            ("leeway_seconds: soon", "auth", "leeway_seconds"),
        ];
        for (text, key, needle) in cases {
            let problems = parse(text).expect_err(text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].key, *key, "{text}");
            assert!(
                problems[0].message.contains(needle),
                "{text}: {}",
                problems[0]
            );
        }
    }
}
