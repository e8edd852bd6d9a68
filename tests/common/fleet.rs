//! A fleet on one machine: s3s-fs behind a tap that counts what reaches
//! S3, shields on 127.0.0.10 and up, and a PoP of edges on 127.0.0.1 and
//! up, each node the real binary with its own cache folder and a peer
//! listener on its own loopback address (its identity on the rings).

use std::net::SocketAddr;
use std::time::Duration;

use super::node::{Node, Options, cache_section};
use super::s3::S3;
use super::tap::Tap;
use super::tls::Certs;
use super::token::{good_claims, hs256};
use super::world::Tls;

/// The fleet's shared secret (written to each node's `cluster.key`).
pub const SECRET: &str = "the-fleet-secret-0123456789abcdef0123456789";
/// The fleet's name, its `CDN-Loop` identifier.
pub const NAME: &str = "test-fleet";

/// A free port on a loopback address other than 127.0.0.1.
pub use super::free_port_on;

/// One node of the fleet.
pub struct Member {
    pub node: Node,
    /// Its peer listener.
    pub peer: SocketAddr,
    pub _cache: tempfile::TempDir,
}

/// What to start.
pub struct Plan {
    pub edges: usize,
    pub shields: usize,
    /// Extra lines of every node's `cache:` section.
    pub cache_extra: String,
    /// Extra lines of every node's `cluster:` section.
    pub cluster_extra: String,
    /// Extra lines of every node's `auth:` section.
    pub auth_extra: String,
    /// Edges also listen for HTTPS (HTTP/2 and HTTP/1.1), with one
    /// certificate for localhost and 127.0.0.1 ([`Fleet::tls`]).
    pub https: bool,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            edges: 3,
            shields: 1,
            cache_extra: String::new(),
            cluster_extra: "  health_check_interval_ms: 200\n".into(),
            auth_extra: String::new(),
            https: false,
        }
    }
}

pub struct Fleet {
    pub s3: S3,
    pub tap: Tap,
    pub shields: Vec<Member>,
    pub edges: Vec<Member>,
    /// A good token for `alice`.
    pub token: String,
    /// The edges' certificate, with `Plan::https`.
    pub tls: Option<Tls>,
}

/// `cluster:` for a node whose peer listener is `me`, in a PoP of `peers`.
pub fn cluster_yaml(me: SocketAddr, peers: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "cluster:\n  name: {NAME}\n  listen: \"{me}\"\n  peers: [{}]\n  secret_file: cluster.key\n{extra}",
        list.join(", ")
    )
}

/// `origin.parents` lines for the shields at `parents`.
pub fn parents_yaml(parents: &[SocketAddr]) -> String {
    let list: Vec<String> = parents.iter().map(|p| format!("\"{p}\"")).collect();
    format!("  parents: [{}]\n", list.join(", "))
}

/// The options of one node of the fleet, its S3 behind `origin_port`.
pub fn member_options(
    origin_port: u16,
    cache: &std::path::Path,
    cache_extra: &str,
    cluster: String,
    origin_extra: String,
) -> Options {
    let mut o = Options::new(origin_port);
    o.cache = Some(cache_section(cache, cache_extra));
    o.files
        .push(("cluster.key".into(), SECRET.as_bytes().to_vec()));
    o.extra_yaml = cluster;
    o.origin_extra = origin_extra;
    o.admin_token = Some(super::world::ADMIN_TOKEN.into());
    o
}

impl Node {
    /// Waits until this node sees `pop` healthy members of its PoP and
    /// `parents` healthy shields. Nodes started one after the other must
    /// see all the others up before their views agree (no test wants the
    /// start-up churn).
    pub async fn wait_rings(&self, pop: usize, parents: usize) {
        let want = [("pop", pop), ("parents", parents)];
        super::eventually("every node healthy", Duration::from_secs(15), || async {
            let text = self.metrics().await;
            want.iter()
                .all(|(ring, n)| {
                    *n == 0
                        || super::http::metric(
                            &text,
                            "cdn_node_ring_healthy_members",
                            &[("ring", ring)],
                        ) == *n as f64
                })
                .then_some(())
        })
        .await;
    }
}

impl Member {
    /// `POST` to an admin route with the admin token.
    pub async fn admin_post(&self, target: &str) -> (u16, String) {
        let auth = format!("Bearer {}", super::world::ADMIN_TOKEN);
        let (status, _, body) = super::http::raw(
            self.node.admin,
            "POST",
            target,
            &[("authorization", &auth), ("content-length", "0")],
        )
        .await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

impl Fleet {
    pub async fn start<K: AsRef<str>, B: AsRef<[u8]>>(objects: &[(K, B)], plan: Plan) -> Fleet {
        let s3 = S3::start(objects).await;
        let tap = Tap::start(s3.port).await;
        let addr = |ip: [u8; 4]| SocketAddr::from((ip, free_port_on(ip)));
        let shield_addrs: Vec<SocketAddr> = (0..plan.shields)
            .map(|i| addr([127, 0, 0, 10 + i as u8]))
            .collect();
        let edge_addrs: Vec<SocketAddr> = (0..plan.edges)
            .map(|i| addr([127, 0, 0, 1 + i as u8]))
            .collect();
        let mut shields = Vec::new();
        for me in &shield_addrs {
            let cache = tempfile::tempdir().expect("tempdir");
            let mut opts = member_options(
                tap.port,
                cache.path(),
                &plan.cache_extra,
                cluster_yaml(*me, &[], &plan.cluster_extra),
                String::new(),
            );
            opts.extra_auth = plan.auth_extra.clone();
            shields.push(Member {
                node: Node::start(opts).await,
                peer: *me,
                _cache: cache,
            });
        }
        let tls = plan.https.then(|| {
            let certs = Certs::new();
            let served = certs.pair("tls");
            Tls { certs, served }
        });
        let mut edges = Vec::new();
        for me in &edge_addrs {
            let cache = tempfile::tempdir().expect("tempdir");
            let mut opts = member_options(
                tap.port,
                cache.path(),
                &plan.cache_extra,
                cluster_yaml(*me, &edge_addrs, &plan.cluster_extra),
                if shield_addrs.is_empty() {
                    String::new()
                } else {
                    parents_yaml(&shield_addrs)
                },
            );
            opts.extra_auth = plan.auth_extra.clone();
            if let Some(tls) = &tls {
                for (name, file) in [("tls.crt", &tls.served.cert), ("tls.key", &tls.served.key)] {
                    let pem = std::fs::read(file).expect("the certificate pair");
                    opts.files.push((name.into(), pem));
                }
                opts.https = Some(("tls.crt".into(), "tls.key".into()));
            }
            edges.push(Member {
                node: Node::start(opts).await,
                peer: *me,
                _cache: cache,
            });
        }
        for edge in &edges {
            edge.node
                .wait_rings(edge_addrs.len(), shield_addrs.len())
                .await;
        }
        Fleet {
            s3,
            tap,
            shields,
            edges,
            token: hs256(&good_claims("alice")),
            tls,
        }
    }

    /// `path?jwt=<token>`.
    pub fn target(&self, path: &str) -> String {
        format!("{path}?jwt={}", self.token)
    }
}
