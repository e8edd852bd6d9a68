//! The validated origin: an S3 endpoint, a bucket and how to sign for it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use std::net::SocketAddr;

use crate::config::sections::{Addressing, CredentialSource, OriginKind, OriginSection};
use crate::config::{Problem, secret, socket_addr};
use crate::origin::sigv4::Credentials;
use crate::request::method::MethodSet;

/// Environment variables read when `origin.credentials.from` is `env`.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub kind: OriginKind,
    /// Whether an endpoint is configured: without one, misses go to the
    /// parents only.
    pub direct: bool,
    /// The shields' peer listeners.
    pub parents: Vec<SocketAddr>,
    pub tls: bool,
    /// Host name or IP literal of the endpoint (without bucket); empty
    /// without a direct origin.
    pub endpoint_host: String,
    pub port: u16,
    /// Empty for `kind: http`.
    pub bucket: String,
    pub region: String,
    pub addressing: Addressing,
    /// `None`: unsigned requests (public bucket).
    pub credentials: Option<Credentials>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub resolve_interval: Duration,
    /// The client query parameters passed on and kept in the cache key.
    pub forward_query: BTreeSet<String>,
    /// Every parameter is passed on (`"*"` in `forward_query`), but for
    /// S3's reserved ones.
    pub forward_all_query: bool,
    /// The methods besides GET and HEAD passed to the origin (`methods`).
    pub methods: PassedMethods,
}

/// Which request methods besides GET and HEAD go to the origin, uncached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PassedMethods {
    /// None: answered 405 (before S3, which the node signs for).
    #[default]
    None,
    /// Every method but CONNECT and TRACE (a tunnel, and a request echoed
    /// back with whatever carried the token).
    All,
    /// These registered methods.
    Listed(MethodSet),
}

/// Methods never passed on, whatever `methods` says.
const NEVER_PASSED: [&str; 2] = ["CONNECT", "TRACE"];

/// Parameters S3 reads as response overrides (`response-content-type`)
/// or as a presigned request's signature (`X-Amz-*`): never passed on.
fn s3_reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("response-") || lower.starts_with("x-amz-")
}

impl OriginConfig {
    /// The host name requests are sent for (and TLS SNI): the bucket is part
    /// of it with virtual-hosted addressing.
    pub fn request_host(&self) -> String {
        match self.addressing {
            Addressing::Path => self.endpoint_host.clone(),
            Addressing::Virtual => format!("{}.{}", self.bucket, self.endpoint_host),
        }
    }

    /// The `Host` header value: the port is included unless it is the
    /// scheme's default.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = self.request_host();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The request path at S3 for a canonical client path.
    pub fn object_uri(&self, canonical_path: &str) -> String {
        if self.kind == OriginKind::Http {
            return canonical_path.to_string();
        }
        match self.addressing {
            Addressing::Path => format!("/{}{}", self.bucket, canonical_path),
            Addressing::Virtual => canonical_path.to_string(),
        }
    }

    /// Whether a request with `method` goes on: GET and HEAD always, the
    /// others as `methods` says.
    pub fn passes_method(&self, method: &str) -> bool {
        if MethodSet::READ.contains(method) {
            return true;
        }
        if NEVER_PASSED.contains(&method) {
            return false;
        }
        match &self.methods {
            PassedMethods::None => false,
            PassedMethods::All => true,
            PassedMethods::Listed(names) => names.contains(method),
        }
    }

    /// The methods a 405 and a CORS preflight name: GET and HEAD, and those
    /// passed to a direct origin (for every method, RFC 9110's but CONNECT
    /// and TRACE, and PATCH).
    pub fn allowed(&self) -> MethodSet {
        let passed = match &self.methods {
            _ if !self.direct => MethodSet::default(),
            PassedMethods::None => MethodSet::default(),
            PassedMethods::All => MethodSet::GENERAL,
            PassedMethods::Listed(names) => *names,
        };
        MethodSet::READ.union(passed)
    }

    pub fn forwards_query(&self, name: &str) -> bool {
        if self.forward_all_query {
            !(self.kind == OriginKind::S3 && s3_reserved(name))
        } else {
            self.forward_query.contains(name)
        }
    }

    pub fn from_section(
        section: &OriginSection,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<Problem>,
    ) -> Option<OriginConfig> {
        let before = problems.len();
        let parents: Vec<SocketAddr> = section
            .parents
            .iter()
            .enumerate()
            .filter_map(|(i, p)| socket_addr(&format!("origin.parents[{i}]"), p, problems))
            .collect();
        let endpoint = match &section.endpoint {
            Some(e) => Some(parse_endpoint(e)),
            None if parents.is_empty() && section.parents.is_empty() => {
                problems.push(Problem::new(
                    "origin.endpoint",
                    "missing: give the origin's URL, e.g. https://s3.eu-west-1.amazonaws.com, or origin.parents (the shield tier)",
                ));
                None
            }
            None => None,
        };
        if let Some(Err(msg)) = &endpoint {
            problems.push(Problem::new("origin.endpoint", msg.clone()));
        }
        let direct_s3 = section.kind == OriginKind::S3 && section.endpoint.is_some();
        match (&section.bucket, section.kind) {
            (Some(bucket), OriginKind::S3) if !valid_bucket(bucket) => {
                problems.push(Problem::new(
                    "origin.bucket",
                    format!(
                        "{bucket:?} is not a valid S3 bucket name: use 3-63 lowercase letters, digits, '-' or '.'"
                    ),
                ));
            }
            (None, OriginKind::S3) if direct_s3 => problems.push(Problem::new(
                "origin.bucket",
                "missing: give the S3 bucket the videos are in (or kind: http for a plain web server)",
            )),
            (Some(_), OriginKind::Http) => problems.push(Problem::new(
                "origin.bucket",
                "is for kind: s3 only: remove it (a plain HTTP origin is asked for the client's path)",
            )),
            _ => {}
        }
        match (&section.credentials, section.kind) {
            (None, OriginKind::S3) if direct_s3 => problems.push(Problem::new(
                "origin.credentials",
                "missing: give `from: env`, `from: files` (with the file paths) or `from: none` for a public bucket",
            )),
            (Some(_), OriginKind::Http) => problems.push(Problem::new(
                "origin.credentials",
                "is for kind: s3 only: remove it (requests to a plain HTTP origin are not signed)",
            )),
            _ => {}
        }
        if section.region.is_empty()
            || !section
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            problems.push(Problem::new(
                "origin.region",
                format!(
                    "{:?} is not a region name: use the bucket's region, e.g. us-east-1",
                    section.region
                ),
            ));
        }
        for (key, value, max) in [
            (
                "origin.connect_timeout_ms",
                section.connect_timeout_ms,
                60_000,
            ),
            ("origin.read_timeout_ms", section.read_timeout_ms, 600_000),
            (
                "origin.resolve_interval_seconds",
                section.resolve_interval_seconds,
                86_400,
            ),
        ] {
            if value == 0 || value > max {
                problems.push(Problem::new(
                    key,
                    format!("{value} is out of range: use a value from 1 to {max}"),
                ));
            }
        }
        let forward_query = section
            .forward_query
            .clone()
            .unwrap_or_else(|| match section.kind {
                OriginKind::S3 => Vec::new(),
                OriginKind::Http => vec!["*".to_owned()],
            });
        for (i, name) in forward_query.iter().enumerate() {
            if name.is_empty() || s3_reserved(name) {
                problems.push(Problem::new(
                    format!("origin.forward_query[{i}]"),
                    format!(
                        "{name:?} cannot be forwarded: S3 response overrides and signature parameters are always dropped; remove it"
                    ),
                ));
            }
        }
        let methods = match (&section.methods, section.kind) {
            (None, OriginKind::S3) => PassedMethods::None,
            (None, OriginKind::Http) => PassedMethods::All,
            (Some(names), OriginKind::S3) if !names.is_empty() => {
                problems.push(Problem::new(
                    "origin.methods",
                    "S3 is sent GET and HEAD only, signed by the node: remove it, or use kind: http",
                ));
                PassedMethods::None
            }
            (Some(names), _) if names.iter().any(|n| n == "*") => PassedMethods::All,
            (Some(names), _) => {
                let mut set = MethodSet::default();
                for (i, name) in names.iter().enumerate() {
                    match MethodSet::of(name) {
                        Some(method) if !NEVER_PASSED.contains(&name.as_str()) => {
                            set = set.union(method);
                        }
                        _ => problems.push(Problem::new(
                            format!("origin.methods[{i}]"),
                            format!(
                                "{name:?} is not a method that can be passed on: name registered ones, in capitals, such as POST, PUT, PATCH, DELETE, OPTIONS, PROPFIND (not CONNECT or TRACE), or \"*\" for all"
                            ),
                        )),
                    }
                }
                PassedMethods::Listed(set)
            }
        };
        let credentials = match &section.credentials {
            Some(c) if section.kind == OriginKind::S3 => {
                load_credentials(c, base_dir, env, problems)
            }
            _ => Some(None),
        };
        if problems.len() > before {
            return None;
        }
        let (direct, (tls, endpoint_host, port)) = match endpoint {
            Some(e) => (true, e.ok()?),
            None => (false, (false, String::new(), 0)),
        };
        Some(OriginConfig {
            kind: section.kind,
            direct,
            parents,
            tls,
            endpoint_host,
            port,
            bucket: section.bucket.clone().unwrap_or_default(),
            region: section.region.clone(),
            addressing: match section.kind {
                OriginKind::S3 => section.addressing,
                OriginKind::Http => Addressing::Path,
            },
            credentials: credentials?,
            connect_timeout: Duration::from_millis(section.connect_timeout_ms),
            read_timeout: Duration::from_millis(section.read_timeout_ms),
            resolve_interval: Duration::from_secs(section.resolve_interval_seconds),
            forward_all_query: forward_query.iter().any(|n| n == "*"),
            methods,
            forward_query: forward_query.into_iter().filter(|n| n != "*").collect(),
        })
    }
}

/// `Some(None)`: unsigned by choice; `None`: a problem was reported.
fn load_credentials(
    c: &crate::config::sections::CredentialsSection,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<Option<Credentials>> {
    match c.from {
        CredentialSource::None => Some(None),
        CredentialSource::Env => {
            let id = secret::from_env("origin.credentials.from", ENV_ACCESS_KEY_ID, env, problems);
            let key = secret::from_env(
                "origin.credentials.from",
                ENV_SECRET_ACCESS_KEY,
                env,
                problems,
            );
            let token = env(ENV_SESSION_TOKEN).filter(|t| !t.is_empty());
            Some(Some(Credentials {
                access_key_id: id?,
                secret_access_key: key?,
                session_token: token,
            }))
        }
        CredentialSource::Files => {
            let mut need = |key: &str, path: &Option<String>| match path {
                Some(p) => secret::from_file(key, p, base_dir, problems),
                None => {
                    problems.push(Problem::new(
                        key,
                        "missing: with `from: files` give the path of the file holding this secret",
                    ));
                    None
                }
            };
            let id = need(
                "origin.credentials.access_key_id_file",
                &c.access_key_id_file,
            );
            let key = need(
                "origin.credentials.secret_access_key_file",
                &c.secret_access_key_file,
            );
            let token = match &c.session_token_file {
                Some(p) => Some(secret::from_file(
                    "origin.credentials.session_token_file",
                    p,
                    base_dir,
                    problems,
                )?),
                None => None,
            };
            Some(Some(Credentials {
                access_key_id: id?,
                secret_access_key: key?,
                session_token: token,
            }))
        }
    }
}

/// `http://host[:port]` or `https://host[:port]` -> (tls, host, port).
pub fn parse_endpoint(endpoint: &str) -> Result<(bool, String, u16), String> {
    let fix = "use http://HOST[:PORT] or https://HOST[:PORT] with no path, e.g. https://s3.eu-west-1.amazonaws.com";
    let (tls, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "{endpoint:?} has no http:// or https:// scheme: {fix}"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(format!("{endpoint:?} is not a bare host and port: {fix}"));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{endpoint:?} has an unclosed IPv6 bracket: {fix}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().ok(),
            None if after.is_empty() => Some(default_port),
            None => None,
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().ok()),
            None => (rest.to_string(), Some(default_port)),
        }
    };
    let port = port
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{endpoint:?} has an invalid port: {fix}"))?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
    {
        return Err(format!("{endpoint:?} has an invalid host: {fix}"));
    }
    Ok((tls, host, port))
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A plain HTTP origin at `http://web.example:8081`.
    pub fn http_origin() -> OriginConfig {
        OriginConfig {
            kind: OriginKind::Http,
            direct: true,
            parents: Vec::new(),
            tls: false,
            endpoint_host: "web.example".into(),
            port: 8081,
            bucket: String::new(),
            region: "us-east-1".into(),
            addressing: Addressing::Path,
            credentials: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            resolve_interval: Duration::from_secs(30),
            forward_query: BTreeSet::new(),
            forward_all_query: false,
            methods: PassedMethods::None,
        }
    }
}
