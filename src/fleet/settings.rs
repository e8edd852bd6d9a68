//! The `fleet` section: where the fleet's etcd is, how this node logs in,
//! which fleet and PoP it belongs to, and how long its rules live; the
//! validated form the node runs with. Without the section the node never
//! talks to etcd.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Problem, secret};

pub const DEFAULT_PREFIX: &str = "/cdn-node";
pub const DEFAULT_LEASE_TTL_SECONDS: u64 = 10;
/// A purge rule outlives every copy it may have to remove: a week.
pub const DEFAULT_PURGE_RULE_TTL_SECONDS: u64 = 7 * 86_400;
/// A revocation given without the token's `exp` lives this long: a day.
pub const DEFAULT_REVOCATION_TTL_SECONDS: u64 = 86_400;

/// `fleet` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// The fleet's name: one key space in etcd per fleet.
    pub name: String,
    /// The PoP this node belongs to: it shares its cache with the PoP's
    /// other members.
    pub pop: String,
    pub etcd: EtcdSection,
    /// The membership lease: a node that stops sending keep-alives leaves
    /// the PoP after this long.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_seconds: u64,
    /// How long a purge rule is kept: at least the longest time an object
    /// stays cached, stale time included.
    #[serde(default = "default_purge_rule_ttl")]
    pub purge_rule_ttl_seconds: u64,
    /// How long a revocation is kept when the token's `exp` is not given:
    /// at least the longest token lifetime.
    #[serde(default = "default_revocation_ttl")]
    pub revocation_ttl_seconds: u64,
}

/// `fleet.etcd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    /// `http://HOST:PORT` or `https://HOST:PORT`, one per etcd member.
    pub endpoints: Vec<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default)]
    pub tls: Option<EtcdTlsSection>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `fleet.etcd.tls`: the CA that signed etcd's certificates, and this
/// node's client certificate when etcd asks for one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTlsSection {
    pub ca_file: String,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_string()
}
fn default_lease_ttl() -> u64 {
    DEFAULT_LEASE_TTL_SECONDS
}
fn default_purge_rule_ttl() -> u64 {
    DEFAULT_PURGE_RULE_TTL_SECONDS
}
fn default_revocation_ttl() -> u64 {
    DEFAULT_REVOCATION_TTL_SECONDS
}

/// PEM files read at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_pem: Vec<u8>,
    /// Client certificate chain and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    pub name: String,
    pub pop: String,
    /// With their scheme.
    pub endpoints: Vec<String>,
    /// Without a trailing `/`.
    pub prefix: String,
    pub tls: Option<EtcdTls>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    pub lease_ttl: Duration,
    pub purge_rule_ttl: Duration,
    pub revocation_ttl: Duration,
}

const LEASE_TTL_RANGE: (u64, u64) = (2, 300);
const RULE_TTL_RANGE: (u64, u64) = (60, 366 * 86_400);

/// A name usable as one segment of an etcd key.
fn segment(key: &str, value: &str, problems: &mut Vec<Problem>) {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        problems.push(Problem::new(
            key,
            format!("{value:?} is not a name: use 1 to 64 letters, digits, '-', '_' or '.'"),
        ));
    }
}

fn in_range(key: &str, value: u64, (min, max): (u64, u64), problems: &mut Vec<Problem>) {
    if !(min..=max).contains(&value) {
        problems.push(Problem::new(
            key,
            format!("{value} is out of range: use {min} to {max} seconds"),
        ));
    }
}

/// An endpoint with its scheme, or the problem's message.
fn endpoint(text: &str, tls: bool) -> Result<String, String> {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let want = if tls { "https" } else { "http" };
    if !scheme.is_empty() && scheme != want {
        return Err(if tls {
            format!("{text:?} is not https: fleet.etcd.tls is set, write https://HOST:PORT")
        } else {
            format!(
                "{text:?}: write http://HOST:PORT, or set fleet.etcd.tls to reach etcd over https"
            )
        });
    }
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| {
        format!("{text:?} has no port: write {want}://HOST:PORT, e.g. {want}://10.0.0.1:2379")
    })?;
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) || port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?} is not HOST:PORT: write {want}://HOST:PORT, e.g. {want}://10.0.0.1:2379"
        ));
    }
    Ok(format!("{want}://{rest}"))
}

fn pem_file(
    key: &str,
    file: &str,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Vec<u8>> {
    let path = base_dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains("-----BEGIN ") => Some(bytes),
        Ok(_) => {
            problems.push(Problem::new(
                key,
                format!("{} is not PEM: give a PEM file", path.display()),
            ));
            None
        }
        Err(e) => {
            problems.push(Problem::new(
                key,
                format!(
                    "{} cannot be read ({e}): give a readable PEM file",
                    path.display()
                ),
            ));
            None
        }
    }
}

fn tls(t: &EtcdTlsSection, base_dir: &Path, problems: &mut Vec<Problem>) -> Option<EtcdTls> {
    let ca = pem_file("fleet.etcd.tls.ca_file", &t.ca_file, base_dir, problems);
    let identity = match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => Some((
            pem_file("fleet.etcd.tls.cert_file", c, base_dir, problems),
            pem_file("fleet.etcd.tls.key_file", k, base_dir, problems),
        )),
        (None, None) => None,
        (Some(_), None) => {
            problems.push(Problem::new(
                "fleet.etcd.tls.key_file",
                "is missing while cert_file is set: give the client certificate's key too",
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(Problem::new(
                "fleet.etcd.tls.cert_file",
                "is missing while key_file is set: give the client certificate too",
            ));
            None
        }
    };
    let identity = match identity {
        Some((Some(c), Some(k))) => Some((c, k)),
        Some(_) => return None,
        None => None,
    };
    Some(EtcdTls {
        ca_pem: ca?,
        identity,
    })
}

impl FleetConfig {
    pub fn from_section(
        s: &FleetSection,
        base_dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<FleetConfig> {
        let before = problems.len();
        segment("fleet.name", &s.name, problems);
        segment("fleet.pop", &s.pop, problems);
        let e = &s.etcd;
        if e.endpoints.is_empty() {
            problems.push(Problem::new(
                "fleet.etcd.endpoints",
                "is empty: list the etcd members, e.g. [\"http://10.0.0.1:2379\"]",
            ));
        }
        let endpoints: Vec<String> = e
            .endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                endpoint(text, e.tls.is_some())
                    .map_err(|m| {
                        problems.push(Problem::new(format!("fleet.etcd.endpoints[{i}]"), m))
                    })
                    .ok()
            })
            .collect();
        let prefix = e.prefix.trim_end_matches('/').to_string();
        if !e.prefix.starts_with('/') || prefix.is_empty() || prefix.contains("//") {
            problems.push(Problem::new(
                "fleet.etcd.prefix",
                format!(
                    "{:?} is not a key prefix: write an absolute one such as {DEFAULT_PREFIX}",
                    e.prefix
                ),
            ));
        }
        let tls = e.tls.as_ref().and_then(|t| tls(t, base_dir, problems));
        let credentials = match (&e.username, &e.password_file) {
            (Some(user), Some(file)) if !user.is_empty() => {
                secret::from_file("fleet.etcd.password_file", file, base_dir, problems)
                    .map(|password| (user.clone(), password))
            }
            (Some(_), Some(_)) => {
                problems.push(Problem::new(
                    "fleet.etcd.username",
                    "is empty: give the etcd user this node logs in as",
                ));
                None
            }
            (Some(_), None) => {
                problems.push(Problem::new(
                    "fleet.etcd.password_file",
                    "is missing while username is set: give the file holding the user's password",
                ));
                None
            }
            (None, Some(_)) => {
                problems.push(Problem::new(
                    "fleet.etcd.username",
                    "is missing while password_file is set: give the etcd user",
                ));
                None
            }
            (None, None) => None,
        };
        in_range(
            "fleet.lease_ttl_seconds",
            s.lease_ttl_seconds,
            LEASE_TTL_RANGE,
            problems,
        );
        in_range(
            "fleet.purge_rule_ttl_seconds",
            s.purge_rule_ttl_seconds,
            RULE_TTL_RANGE,
            problems,
        );
        in_range(
            "fleet.revocation_ttl_seconds",
            s.revocation_ttl_seconds,
            RULE_TTL_RANGE,
            problems,
        );
        (problems.len() == before).then(|| FleetConfig {
            name: s.name.clone(),
            pop: s.pop.clone(),
            endpoints,
            prefix,
            tls,
            credentials,
            lease_ttl: Duration::from_secs(s.lease_ttl_seconds),
            purge_rule_ttl: Duration::from_secs(s.purge_rule_ttl_seconds),
            revocation_ttl: Duration::from_secs(s.revocation_ttl_seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str, dir: &Path) -> Result<FleetConfig, Vec<String>> {
        let section: FleetSection = serde_yaml::from_str(yaml).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        FleetConfig::from_section(&section, dir, &mut problems)
            .ok_or_else(|| problems.iter().map(|p| p.to_string()).collect())
    }

    const BASE: &str = "name: prod\npop: fra1\n";

    #[test]
    fn valid_sections() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "secret\n").expect("write");
        let c = parse(
            &format!("{BASE}etcd:\n  endpoints: [\"10.0.0.1:2379\", \"http://[::1]:2379\"]\n"),
            dir.path(),
        )
        .expect("valid");
        assert_eq!(c.endpoints, ["http://10.0.0.1:2379", "http://[::1]:2379"]);
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(c.lease_ttl, Duration::from_secs(DEFAULT_LEASE_TTL_SECONDS));
        let c = parse(
            &format!(
                "{BASE}etcd:\n  endpoints: [\"http://e:2379\"]\n  prefix: /cdn/\n  username: node\n  password_file: pw\nlease_ttl_seconds: 5\n"
            ),
            dir.path(),
        )
        .expect("valid");
        assert_eq!(c.prefix, "/cdn");
        assert_eq!(c.credentials, Some(("node".into(), "secret".into())));
    }

    #[test]
    fn problems_name_the_key_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").expect("write");
        let e = "etcd:\n  endpoints: [\"http://e:2379\"]\n";
        let cases: &[(&str, &str)] = &[
            (
                "name: a/b\npop: p\netcd: {endpoints: [\"e:1\"]}\n",
                "fleet.name: \"a/b\" is not a name",
            ),
            (
                "name: a\npop: \"\"\netcd: {endpoints: [\"e:1\"]}\n",
                "fleet.pop",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: []}}\n"),
                "fleet.etcd.endpoints: is empty",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: [\"e\"]}}\n"),
                "fleet.etcd.endpoints[0]: \"e\" has no port",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: [\"https://e:1\"]}}\n"),
                "set fleet.etcd.tls",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: [\"http://e:1\"], tls: {{ca_file: ca.pem}}}}\n"),
                "is not https",
            ),
            (
                &format!(
                    "{BASE}etcd: {{endpoints: [\"https://e:1\"], tls: {{ca_file: nope.pem}}}}\n"
                ),
                "fleet.etcd.tls.ca_file",
            ),
            (
                &format!(
                    "{BASE}etcd: {{endpoints: [\"https://e:1\"], tls: {{ca_file: ca.pem, cert_file: ca.pem}}}}\n"
                ),
                "fleet.etcd.tls.key_file: is missing",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: [\"e:1\"], prefix: cdn}}\n"),
                "fleet.etcd.prefix",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: [\"e:1\"], username: u}}\n"),
                "fleet.etcd.password_file: is missing",
            ),
            (
                &format!("{BASE}etcd: {{endpoints: [\"e:1\"], password_file: pw}}\n"),
                "fleet.etcd.username: is missing",
            ),
            (
                &format!("{BASE}{e}lease_ttl_seconds: 1\n"),
                "fleet.lease_ttl_seconds: 1 is out of range",
            ),
            (
                &format!("{BASE}{e}purge_rule_ttl_seconds: 5\n"),
                "fleet.purge_rule_ttl_seconds",
            ),
            (
                &format!("{BASE}{e}revocation_ttl_seconds: 0\n"),
                "fleet.revocation_ttl_seconds",
            ),
            (&format!("{BASE}{e}members: 3\n"), "unknown field `members`"),
        ];
        for (yaml, want) in cases {
            let got = parse(yaml, dir.path()).expect_err(yaml).join("\n");
            assert!(got.contains(want), "{yaml}\nwant {want:?}\ngot {got}");
        }
    }
}
