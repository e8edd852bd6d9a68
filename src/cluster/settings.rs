//! The `cluster` section: this node's place in its PoP (the peer listener
//! that is its identity on the ring, the PoP's members) and the fleet-wide
//! secret and name that sign and mark every hop between nodes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Problem, secret, socket_addr};

pub const DEFAULT_HEALTH_CHECK_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_DOWN_FOR_MS: u64 = 10_000;
pub const DEFAULT_MARKER_TTL_SECONDS: u64 = 30;
pub const DEFAULT_PEER_CONNECT_TIMEOUT_MS: u64 = 500;
/// An HMAC-SHA256 key shorter than this is guessable.
const MIN_SECRET_BYTES: usize = 32;

/// `cluster` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// The fleet's name: its `CDN-Loop` identifier (RFC 8586).
    pub name: String,
    /// This node's peer listener, `IP:PORT`: where the PoP's other nodes and
    /// the edges below a shield send their requests, and this node's
    /// identity on the ring.
    pub listen: String,
    /// The PoP's nodes (their peer listeners), this one included. Empty: a
    /// node that shards with nobody (a lone shield, or membership from the
    /// fleet's control plane).
    #[serde(default)]
    pub peers: Vec<String>,
    /// File holding the fleet's shared secret (at least 32 bytes).
    #[serde(default)]
    pub secret_file: Option<String>,
    /// Environment variable holding that secret (instead of a file).
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "default_health_check_interval_ms")]
    pub health_check_interval_ms: u64,
    /// How long a peer whose connection failed is passed over.
    #[serde(default = "default_down_for_ms")]
    pub down_for_ms: u64,
    /// How long a hop's marker is accepted after it was made.
    #[serde(default = "default_marker_ttl_seconds")]
    pub marker_ttl_seconds: u64,
    #[serde(default = "default_peer_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whether this node keeps memory copies of the small hot objects it
    /// forwards to their owner ([`super::copies`]).
    #[serde(default = "default_memory_copies")]
    pub memory_copies: bool,
}

fn default_health_check_interval_ms() -> u64 {
    DEFAULT_HEALTH_CHECK_INTERVAL_MS
}
fn default_down_for_ms() -> u64 {
    DEFAULT_DOWN_FOR_MS
}
fn default_marker_ttl_seconds() -> u64 {
    DEFAULT_MARKER_TTL_SECONDS
}
fn default_peer_connect_timeout_ms() -> u64 {
    DEFAULT_PEER_CONNECT_TIMEOUT_MS
}
fn default_memory_copies() -> bool {
    true
}

/// The validated section.
#[derive(Clone)]
pub struct ClusterConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    pub secret: Vec<u8>,
    pub health_check_interval: Duration,
    pub down_for: Duration,
    pub marker_ttl: Duration,
    pub connect_timeout: Duration,
    pub memory_copies: bool,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field("secret", &"(hidden)")
            .finish_non_exhaustive()
    }
}

/// RFC 9110 `token` characters: what a `CDN-Loop` identifier may hold.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ClusterConfig {
    pub fn from_section(
        section: &ClusterSection,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<Problem>,
    ) -> Option<ClusterConfig> {
        let before = problems.len();
        if !is_token(&section.name) {
            problems.push(Problem::new(
                "cluster.name",
                format!(
                    "{:?} is not a token: use letters, digits and -._~ only, e.g. edu-cdn (it names the fleet in CDN-Loop)",
                    section.name
                ),
            ));
        }
        let listen = socket_addr("cluster.listen", &section.listen, problems);
        if listen.is_some_and(|a| a.ip().is_unspecified()) {
            problems.push(Problem::new(
                "cluster.listen",
                format!(
                    "{} is not an address peers can reach: give this node's own IP, e.g. 10.0.0.5:8090 (it is its identity on the ring)",
                    section.listen
                ),
            ));
        }
        let peers: Vec<SocketAddr> = section
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| socket_addr(&format!("cluster.peers[{i}]"), p, problems))
            .collect();
        if let Some(me) = listen
            && !peers.is_empty()
            && !peers.contains(&me)
        {
            problems.push(Problem::new(
                "cluster.peers",
                format!(
                    "does not list this node's cluster.listen {me}: give every node of the PoP the same list, itself included, so all build the same ring"
                ),
            ));
        }
        let mut sorted = peers.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != peers.len() {
            problems.push(Problem::new(
                "cluster.peers",
                "lists a node twice: list each peer listener once",
            ));
        }
        let secret = match (&section.secret_file, &section.secret_env) {
            (Some(file), None) => {
                secret::from_file("cluster.secret_file", file, base_dir, problems)
            }
            (None, Some(var)) => secret::from_env("cluster.secret_env", var, env, problems),
            _ => {
                problems.push(Problem::new(
                    "cluster.secret_file",
                    "give exactly one of cluster.secret_file or cluster.secret_env: the secret every node of the fleet shares to sign its hops",
                ));
                None
            }
        };
        if let Some(s) = &secret
            && s.len() < MIN_SECRET_BYTES
        {
            problems.push(Problem::new(
                if section.secret_file.is_some() {
                    "cluster.secret_file"
                } else {
                    "cluster.secret_env"
                },
                format!(
                    "the secret has {} bytes: use at least {MIN_SECRET_BYTES} random bytes, e.g. `openssl rand -hex 32`",
                    s.len()
                ),
            ));
        }
        for (key, value, min, max) in [
            (
                "cluster.health_check_interval_ms",
                section.health_check_interval_ms,
                50,
                60_000,
            ),
            ("cluster.down_for_ms", section.down_for_ms, 100, 600_000),
            (
                "cluster.marker_ttl_seconds",
                section.marker_ttl_seconds,
                1,
                3_600,
            ),
            (
                "cluster.connect_timeout_ms",
                section.connect_timeout_ms,
                10,
                60_000,
            ),
        ] {
            if !(min..=max).contains(&value) {
                problems.push(Problem::new(
                    key,
                    format!("{value} is out of range: use a value from {min} to {max}"),
                ));
            }
        }
        if problems.len() > before {
            return None;
        }
        Some(ClusterConfig {
            name: section.name.clone(),
            listen: listen?,
            peers,
            secret: secret?.into_bytes(),
            health_check_interval: Duration::from_millis(section.health_check_interval_ms),
            down_for: Duration::from_millis(section.down_for_ms),
            marker_ttl: Duration::from_secs(section.marker_ttl_seconds),
            connect_timeout: Duration::from_millis(section.connect_timeout_ms),
            memory_copies: section.memory_copies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn problems(yaml: &str) -> Vec<String> {
        let section: ClusterSection = serde_yaml::from_str(yaml).expect("yaml");
        let env = |name: &str| (name == "FLEET_SECRET").then(|| SECRET.to_string());
        let mut problems = Vec::new();
        let got = ClusterConfig::from_section(&section, Path::new("."), &env, &mut problems);
        assert_eq!(got.is_some(), problems.is_empty(), "{yaml}");
        problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn sections() {
        let base = "name: edu\nlisten: 10.0.0.1:8090\nsecret_env: FLEET_SECRET\n";
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("peers: [10.0.0.1:8090, 10.0.0.2:8090]\n", &[]),
            ("peers: [10.0.0.2:8090]\n", &["cluster.peers"]),
            (
                "peers: [10.0.0.1:8090, 10.0.0.2:8090, 10.0.0.2:8090]\n",
                &["cluster.peers"],
            ),
            ("peers: [10.0.0.1]\n", &["cluster.peers[0]"]),
            (
                "health_check_interval_ms: 0\n",
                &["cluster.health_check_interval_ms"],
            ),
            ("down_for_ms: 10\n", &["cluster.down_for_ms"]),
            ("marker_ttl_seconds: 0\n", &["cluster.marker_ttl_seconds"]),
            ("connect_timeout_ms: 0\n", &["cluster.connect_timeout_ms"]),
        ];
        for (extra, want) in cases {
            assert_eq!(problems(&format!("{base}{extra}")), *want, "{extra}");
        }
        let others: &[(&str, &[&str])] = &[
            (
                "name: \"edu cdn\"\nlisten: 10.0.0.1:8090\nsecret_env: FLEET_SECRET\n",
                &["cluster.name"],
            ),
            (
                "name: edu\nlisten: 0.0.0.0:8090\nsecret_env: FLEET_SECRET\n",
                &["cluster.listen"],
            ),
            (
                "name: edu\nlisten: 10.0.0.1:8090\n",
                &["cluster.secret_file"],
            ),
            (
                "name: edu\nlisten: 10.0.0.1:8090\nsecret_env: NOPE\n",
                &["cluster.secret_env"],
            ),
            (
                "name: edu\nlisten: 10.0.0.1:8090\nsecret_env: FLEET_SECRET\nsecret_file: x\n",
                &["cluster.secret_file"],
            ),
        ];
        for (yaml, want) in others {
            assert_eq!(problems(yaml), *want, "{yaml}");
        }
    }

    #[test]
    fn a_short_secret_is_refused() {
        let section: ClusterSection =
            serde_yaml::from_str("name: edu\nlisten: 10.0.0.1:8090\nsecret_env: S\n").unwrap();
        let mut problems = Vec::new();
        let env = |_: &str| Some("short".to_string());
        assert!(
            ClusterConfig::from_section(&section, Path::new("."), &env, &mut problems).is_none()
        );
        assert_eq!(problems[0].key, "cluster.secret_env");
        assert!(
            problems[0].message.contains("openssl rand"),
            "{}",
            problems[0]
        );
        assert!(!problems[0].message.contains("short"), "the secret leaked");
    }
}
