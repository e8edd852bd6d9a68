//! The `cors` section: which web origins may read the node's answers, and
//! the validated form the node runs with.

use std::time::Duration;

use serde::Deserialize;

use crate::config::Problem;

/// How long a browser may keep a preflight's answer by default.
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 600;
/// Browsers cap the preflight cache (Chromium at 2 hours): more means nothing.
const MAX_MAX_AGE_SECONDS: u64 = 86_400;

/// `cors` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    /// Exact origins (`https://portal.example.com`) and wildcard-subdomain
    /// patterns (`https://*.example.com`); empty: CORS off.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Adds `Access-Control-Allow-Credentials: true`, for pages that send
    /// the token in a cookie (`fetch(..., {credentials: "include"})`).
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
}

fn default_max_age() -> u64 {
    DEFAULT_MAX_AGE_SECONDS
}

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    /// `scheme://host[:port]`, lower case, without the scheme's default port.
    Exact(String),
    /// `scheme://*.suffix[:port]`: any host ending in `.suffix` (one label
    /// or more before it; never the bare suffix).
    Subdomains {
        scheme: String,
        suffix: String,
        port: Option<u16>,
    },
}

/// The validated section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    pub origins: Vec<OriginRule>,
    pub allow_credentials: bool,
    pub max_age: Duration,
    /// The node's own response fields a page may read besides the
    /// standard ones (the renewed token's, the cache status').
    pub exposed: Vec<String>,
}

/// An origin split into its parts: scheme, host, port (the scheme's default
/// port dropped). `None` for anything that is not a serialized origin.
pub fn split_origin(text: &str) -> Option<(String, String, Option<u16>)> {
    let lower = text.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => {
            let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
            (host, (port != default_port).then_some(port))
        }
        _ => (rest, None),
    };
    if host.is_empty() || host.starts_with('.') || host.ends_with('.') {
        return None;
    }
    Some((scheme.to_string(), host.to_string(), port))
}

fn join(scheme: &str, host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

fn rule(text: &str) -> Result<OriginRule, String> {
    let Some((scheme, host, port)) = split_origin(text.trim()) else {
        return Err(format!(
            "{text:?} is not an origin: write scheme://host[:port] with no path, \
             e.g. \"https://portal.example.com\", or \"https://*.example.com\" for its subdomains"
        ));
    };
    match host.strip_prefix("*.") {
        Some(suffix) if !suffix.contains('*') && suffix.contains('.') => {
            Ok(OriginRule::Subdomains {
                scheme,
                suffix: format!(".{suffix}"),
                port,
            })
        }
        _ if host.contains('*') => Err(format!(
            "{text:?}: a wildcard stands alone as the first label of a domain with at least \
             two more (\"https://*.example.com\"); list other origins one by one"
        )),
        _ => Ok(OriginRule::Exact(join(&scheme, &host, port))),
    }
}

impl CorsConfig {
    /// The validated section, or `None` (CORS off) when no origin is
    /// allowed; every problem goes to `problems`.
    pub fn from_section(section: &CorsSection, problems: &mut Vec<Problem>) -> Option<CorsConfig> {
        let mut origins = Vec::new();
        for (i, text) in section.allowed_origins.iter().enumerate() {
            match rule(text) {
                Ok(r) => origins.push(r),
                Err(message) => {
                    problems.push(Problem::new(format!("cors.allowed_origins[{i}]"), message))
                }
            }
        }
        if section.max_age_seconds > MAX_MAX_AGE_SECONDS {
            problems.push(Problem::new(
                "cors.max_age_seconds",
                format!(
                    "{} is out of range: use 0 to {MAX_MAX_AGE_SECONDS} seconds",
                    section.max_age_seconds
                ),
            ));
        }
        if section.allow_credentials && section.allowed_origins.is_empty() {
            problems.push(Problem::new(
                "cors.allow_credentials",
                "is set but cors.allowed_origins is empty: list the origins whose pages send cookies",
            ));
        }
        (!origins.is_empty()).then(|| CorsConfig {
            origins,
            allow_credentials: section.allow_credentials,
            max_age: Duration::from_secs(section.max_age_seconds),
            exposed: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_patterns() {
        let exact = |s: &str| Ok(OriginRule::Exact(s.into()));
        let sub = |scheme: &str, suffix: &str, port| {
            Ok(OriginRule::Subdomains {
                scheme: scheme.into(),
                suffix: suffix.into(),
                port,
            })
        };
        let cases: Vec<(&str, Result<OriginRule, String>)> = vec![
            (
                "https://portal.example.com",
                exact("https://portal.example.com"),
            ),
            (
                "HTTPS://Portal.Example.com",
                exact("https://portal.example.com"),
            ),
            (
                "https://portal.example.com:443",
                exact("https://portal.example.com"),
            ),
            ("http://127.0.0.1:8080", exact("http://127.0.0.1:8080")),
            ("http://[::1]:8080", exact("http://[::1]:8080")),
            ("http://[::1]", exact("http://[::1]")),
            ("https://*.example.com", sub("https", ".example.com", None)),
            (
                "https://*.example.com:8443",
                sub("https", ".example.com", Some(8443)),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(rule(text), want, "{text}");
        }
        for bad in [
            "portal.example.com",
            "https://portal.example.com/",
            "https://portal.example.com/player",
            "ftp://example.com",
            "null",
            "*",
            "https://*",
            "https://*.com",
            "https://a.*.example.com",
            "https://*.*.example.com",
            "https://example.com:0",
            "https://example.com:99999",
            "https://user@example.com",
            "https://",
        ] {
            assert!(rule(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn the_section_names_each_bad_key() {
        let mut problems = Vec::new();
        let section = CorsSection {
            allowed_origins: vec!["https://ok.example.com".into(), "nope".into()],
            allow_credentials: true,
            max_age_seconds: 100_000,
        };
        assert!(CorsConfig::from_section(&section, &mut problems).is_some());
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["cors.allowed_origins[1]", "cors.max_age_seconds"]);

        let mut problems = Vec::new();
        let off = CorsSection {
            allow_credentials: true,
            ..CorsSection::default()
        };
        assert_eq!(CorsConfig::from_section(&off, &mut problems), None);
        assert_eq!(problems[0].key, "cors.allow_credentials");
    }
}
