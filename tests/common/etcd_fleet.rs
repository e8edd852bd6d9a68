//! A fleet on etcd for the tests: a real etcd, one s3s-fs origin, and several real
//! nodes in one PoP, each with its own disk cache and a `fleet` section
//! pointing at that etcd.

use std::time::Duration;

use super::etcd::Etcd;
use super::http::{Headers, metric, raw};
use super::node::{Node, Options, cache_section};
use super::s3::S3;
use super::token::{good_claims, hs256};
use super::world::ADMIN_TOKEN;

/// The fleet's and the PoP's names in the tests.
pub const FLEET: &str = "test";
pub const POP: &str = "pop1";
/// The membership lease the test nodes take.
pub const LEASE_TTL_SECONDS: u64 = 2;

/// The `fleet:` section for a node of the test fleet.
pub fn fleet_yaml(endpoint: &str, lease_ttl_seconds: u64) -> String {
    format!(
        "fleet:\n  name: {FLEET}\n  pop: {POP}\n  lease_ttl_seconds: {lease_ttl_seconds}\n  etcd:\n    endpoints: [\"{endpoint}\"]\n"
    )
}

pub struct Fleet {
    pub etcd: Etcd,
    pub s3: S3,
    pub nodes: Vec<Node>,
    /// Each node's cache folder, kept across restarts.
    caches: Vec<tempfile::TempDir>,
    endpoints: Vec<String>,
    /// The membership lease of the nodes started from now on.
    pub lease_ttl_seconds: u64,
    /// A good token for `alice`.
    pub token: String,
}

impl Fleet {
    /// etcd, the origin with `objects`, and `n` nodes, all ready.
    pub async fn start(n: usize, objects: &[(&str, &[u8])]) -> Fleet {
        Self::start_with(n, objects, LEASE_TTL_SECONDS).await
    }

    /// As `start`, the nodes' membership lease being `lease_ttl_seconds`.
    pub async fn start_with(n: usize, objects: &[(&str, &[u8])], lease_ttl_seconds: u64) -> Fleet {
        let etcd = Etcd::start().await;
        let s3 = S3::start(objects).await;
        let mut fleet = Fleet {
            etcd,
            s3,
            nodes: Vec::new(),
            caches: Vec::new(),
            endpoints: Vec::new(),
            lease_ttl_seconds,
            token: hs256(&good_claims("alice")),
        };
        for _ in 0..n {
            fleet.add_node().await;
        }
        fleet
    }

    /// The options of a node of this fleet with the cache in `dir`,
    /// reaching etcd at `endpoint`.
    pub fn options(&self, dir: &std::path::Path, endpoint: &str) -> Options {
        let mut opts = Options::new(self.s3.port);
        opts.cache = Some(cache_section(dir, ""));
        opts.admin_token = Some(ADMIN_TOKEN.into());
        opts.extra_yaml = fleet_yaml(endpoint, self.lease_ttl_seconds);
        opts
    }

    /// Starts one more node; its index.
    pub async fn add_node(&mut self) -> usize {
        let endpoint = self.etcd.endpoint();
        self.add_node_via(&endpoint).await
    }

    /// Starts one more node that reaches etcd at `endpoint` (a relay).
    pub async fn add_node_via(&mut self, endpoint: &str) -> usize {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Node::start(self.options(dir.path(), endpoint)).await;
        self.caches.push(dir);
        self.endpoints.push(endpoint.to_string());
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Kills node `i` (SIGKILL) and starts it again on its cache folder.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        let opts = self.options(self.caches[i].path(), &self.endpoints[i]);
        self.nodes[i] = Node::start(opts).await;
    }

    /// A GET of `path` on node `i` with `token` in the `jwt` parameter.
    pub async fn get_with(&self, i: usize, path: &str, token: &str) -> (u16, Headers, Vec<u8>) {
        raw(
            self.nodes[i].http,
            "GET",
            &format!("{path}?jwt={token}"),
            &[],
        )
        .await
    }

    pub async fn get(&self, i: usize, path: &str) -> (u16, Headers, Vec<u8>) {
        self.get_with(i, path, &self.token).await
    }

    /// `method target` on node `i`'s admin listener with the admin token.
    pub async fn admin(&self, i: usize, method: &str, target: &str) -> (u16, String) {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let (status, _, body) = raw(
            self.nodes[i].admin,
            method,
            target,
            &[("authorization", &auth), ("content-length", "0")],
        )
        .await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// One sample of node `i`'s metrics; `None` when it does not answer.
    pub async fn metric(&self, i: usize, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.nodes[i].try_metrics().await?;
        Some(metric(&text, name, labels))
    }
}

/// How long a rule may take to reach every node in the tests.
pub const PROPAGATION: Duration = Duration::from_secs(1);
