//! Cross-origin reads (CORS) for players on another origin than the node's:
//! which origins may read the node's answers ([`settings`]), the preflight
//! the node answers itself ([`preflight`]), and the fields every answer to
//! an allowed origin carries, added as the answer is written, whatever route
//! wrote it ([`module`]): the cached object and its key are the same
//! whatever the `Origin`.

pub mod module;
pub mod preflight;
pub mod settings;

use http::HeaderValue;
use pingora_http::ResponseHeader;

use settings::{CorsConfig, OriginRule, split_origin};

/// Response fields a page may read besides the CORS-safelisted ones.
const EXPOSED: &[&str] = &["content-range", "content-length", "accept-ranges", "etag"];

/// CORS as the node runs it.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<OriginRule>,
    allow_credentials: bool,
    max_age: HeaderValue,
    /// `Access-Control-Expose-Headers`, built once.
    expose: HeaderValue,
    /// Request fields a page may send (`Access-Control-Allow-Headers`).
    allowed_request_headers: Vec<String>,
}

impl Cors {
    /// `exposed_extra`: response fields of the node's own to expose too (the
    /// renewed token's, the cache status'); `token_headers`: request fields
    /// that carry tokens.
    pub fn new(config: CorsConfig, exposed_extra: &[&str], token_headers: &[&str]) -> Cors {
        let mut expose: Vec<String> = EXPOSED.iter().map(|s| s.to_string()).collect();
        for extra in exposed_extra {
            let extra = extra.to_ascii_lowercase();
            if !expose.contains(&extra) {
                expose.push(extra);
            }
        }
        let mut allowed: Vec<String> = [
            "range",
            "if-range",
            "if-none-match",
            "if-modified-since",
            "authorization",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for h in token_headers {
            let h = h.to_ascii_lowercase();
            if !allowed.contains(&h) {
                allowed.push(h);
            }
        }
        Cors {
            origins: config.origins,
            allow_credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age.as_secs()),
            expose: HeaderValue::from_str(&expose.join(", "))
                .unwrap_or_else(|_| HeaderValue::from_static("content-range, content-length")),
            allowed_request_headers: allowed,
        }
    }

    /// Whether the page at `origin` (an `Origin` field) may read answers.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let Some((scheme, host, port)) = origin.to_str().ok().and_then(split_origin) else {
            return false;
        };
        self.origins.iter().any(|rule| match rule {
            OriginRule::Exact(exact) => {
                let wanted = match port {
                    Some(p) => format!("{scheme}://{host}:{p}"),
                    None => format!("{scheme}://{host}"),
                };
                *exact == wanted
            }
            OriginRule::Subdomains {
                scheme: s,
                suffix,
                port: p,
            } => {
                *s == scheme
                    && *p == port
                    && host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
            }
        })
    }

    /// Adds the fields of an answer to an allowed `origin`: unless the
    /// answer carries them already (a preflight's).
    pub fn add_fields(&self, header: &mut ResponseHeader, origin: &HeaderValue) {
        if header
            .headers
            .contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            return;
        }
        // Static names and values already checked: these cannot fail.
        let _ = header.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        let _ = header.append_header(http::header::VARY, "Origin");
        if self.allow_credentials {
            let _ = header.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        let _ = header.insert_header(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            self.expose.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cors::settings::CorsSection;

    pub(super) fn cors(origins: &[&str], credentials: bool) -> Cors {
        let section = CorsSection {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_credentials: credentials,
            max_age_seconds: 600,
        };
        let mut problems = Vec::new();
        let config = CorsConfig::from_section(&section, &mut problems).expect("cors on");
        assert!(problems.is_empty(), "{problems:?}");
        Cors::new(config, &["CDN-Token", "X-Cache"], &["x-token"])
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let c = cors(
            &[
                "https://portal.example.com",
                "https://*.school.test",
                "http://127.0.0.1:8123",
            ],
            false,
        );
        let cases = [
            ("https://portal.example.com", true),
            ("https://PORTAL.example.com", true),
            ("https://portal.example.com:443", true),
            ("http://portal.example.com", false),
            ("https://portal.example.com:8443", false),
            ("https://evil-portal.example.com", false),
            ("https://portal.example.com.evil.test", false),
            ("https://a.school.test", true),
            ("https://a.b.school.test", true),
            ("https://school.test", false),
            ("https://xschool.test", false),
            ("http://a.school.test", false),
            ("http://127.0.0.1:8123", true),
            ("http://127.0.0.1:8124", false),
            ("null", false),
            ("", false),
        ];
        for (origin, want) in cases {
            let v = HeaderValue::from_str(origin).unwrap();
            assert_eq!(c.allows(&v), want, "{origin}");
        }
    }

    #[test]
    fn answers_get_the_fields_once() {
        let c = cors(&["https://portal.example.com"], true);
        let origin = HeaderValue::from_static("https://portal.example.com");
        let mut h = ResponseHeader::build(206, None).unwrap();
        h.append_header("vary", "Accept-Encoding").unwrap();
        c.add_fields(&mut h, &origin);
        c.add_fields(&mut h, &origin);
        let get = |name: &str| {
            h.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            get("access-control-allow-origin"),
            ["https://portal.example.com"]
        );
        assert_eq!(get("vary"), ["Accept-Encoding", "Origin"]);
        assert_eq!(get("access-control-allow-credentials"), ["true"]);
        assert_eq!(
            get("access-control-expose-headers"),
            ["content-range, content-length, accept-ranges, etag, cdn-token, x-cache"]
        );
    }
}
