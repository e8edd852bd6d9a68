//! The test world: s3s-fs holding the test's objects, optionally a tap
//! between the node and it, and the node in front, configured by the test.
//!
//! ```ignore
//! let w = World::builder()
//!     .object("v/a.mp4", &body)
//!     .tap()
//!     .cache("  max_size: 1000000\n")
//!     .configure(|o| o.read_timeout_ms = 1000)
//!     .start()
//!     .await;
//! let (status, headers, got) = w.get("/v/a.mp4").await;
//! assert_eq!(w.tap().origin_requests(), (1, 0));
//! ```

use std::path::Path;
use std::process::Output;

use super::free_port;
use super::http::{Headers, metric, raw};
use super::jwks::JwksServer;
use super::node::{Node, Options, cache_section};
use super::s3::S3;
use super::tap::Tap;
use super::tls::{Certs, Pair};
use super::token::{good_claims, hs256};

/// The admin token a world built with `admin_token()` is given.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// The certificates of a world built with `tls()`.
pub struct Tls {
    /// The folder they are in; more pairs can be made there.
    pub certs: Certs,
    /// The pair the node was started with (copied into its folder as
    /// `tls.crt` and `tls.key`).
    pub served: Pair,
}

/// What a world is made of; `World::builder()` gives one with an empty
/// bucket and the node's default options.
pub struct Builder {
    objects: Vec<(String, Vec<u8>)>,
    origin_down: bool,
    /// The port of a test's own origin, instead of s3s-fs.
    own_origin: Option<u16>,
    tap: bool,
    cache_dir: Option<tempfile::TempDir>,
    tls: Option<Tls>,
    opts: Options,
}

impl Builder {
    /// An object in the bucket.
    pub fn object(mut self, key: &str, body: &[u8]) -> Self {
        self.objects.push((key.to_string(), body.to_vec()));
        self
    }

    /// Objects in the bucket: (key, body) pairs, e.g. a
    /// `&Vec<(String, Vec<u8>)>`.
    pub fn objects<'a, K, B>(mut self, objects: impl IntoIterator<Item = &'a (K, B)>) -> Self
    where
        K: AsRef<str> + 'a,
        B: AsRef<[u8]> + 'a,
    {
        for (key, body) in objects {
            self.objects
                .push((key.as_ref().to_string(), body.as_ref().to_vec()));
        }
        self
    }

    /// Objects in the bucket under each of `keys`, all holding `body`.
    pub fn objects_alike(mut self, keys: &[&str], body: &[u8]) -> Self {
        for key in keys {
            self.objects.push((key.to_string(), body.to_vec()));
        }
        self
    }

    /// A recording tap between the node and s3s-fs (`World::tap`).
    pub fn tap(mut self) -> Self {
        self.tap = true;
        self
    }

    /// No origin: the node's origin is a port nothing listens on.
    pub fn origin_down(mut self) -> Self {
        self.origin_down = true;
        self
    }

    /// The node's origin is the test's own server on `port` (a
    /// `fault_origin::FaultOrigin`): no s3s-fs is started.
    pub fn origin(mut self, port: u16) -> Self {
        self.own_origin = Some(port);
        self
    }

    /// A disk cache in `dir`, a folder the test owns (a tmpfs), with
    /// `extra` settings (lines indented two spaces).
    pub fn cache_in(mut self, dir: &Path, extra: &str) -> Self {
        self.opts.cache = Some(cache_section(dir, extra));
        self
    }

    /// A disk cache in a folder of the world's (kept across `restart` and
    /// `upgrade`), with `extra` settings (lines indented two spaces).
    pub fn cache(mut self, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        self.opts.cache = Some(cache_section(dir.path(), extra));
        self.cache_dir = Some(dir);
        self
    }

    /// The admin listener's `/purge` and `/auth/` open to `ADMIN_TOKEN`.
    pub fn admin_token(mut self) -> Self {
        self.opts.admin_token = Some(ADMIN_TOKEN.into());
        self
    }

    /// An HTTPS listener with a fresh self-signed certificate for localhost
    /// and 127.0.0.1 (`World::tls`).
    pub fn tls(mut self) -> Self {
        let certs = Certs::new();
        let served = certs.pair("tls");
        self.opts.files.push((
            "tls.crt".into(),
            std::fs::read(&served.cert).expect("certificate"),
        ));
        self.opts
            .files
            .push(("tls.key".into(), std::fs::read(&served.key).expect("key")));
        self.opts.https = Some(("tls.crt".into(), "tls.key".into()));
        self.tls = Some(Tls { certs, served });
        self
    }

    /// A file in the node's folder (a key, a denylist), by name.
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.opts.files.push((name.into(), contents.into()));
        self
    }

    /// A key source: the JWKS that `server` publishes, refetched every
    /// `refresh_seconds`, and at most every 100 ms for an unknown `kid`.
    pub fn jwks(mut self, server: &JwksServer, refresh_seconds: u64) -> Self {
        self.opts.extra_keys.push_str(&format!(
            "    - jwks_url: \"{}\"\n      refresh_seconds: {refresh_seconds}\n      min_fetch_interval_ms: 100\n",
            server.url()
        ));
        self
    }

    /// A `cors:` section allowing `origins` (exact origins or
    /// `https://*.example.com` patterns), the other keys at their defaults.
    pub fn cors(mut self, origins: &[&str]) -> Self {
        let list: Vec<String> = origins.iter().map(|o| format!("{o:?}")).collect();
        self.opts.extra_yaml.push_str(&format!(
            "cors:\n  allowed_origins: [{}]\n",
            list.join(", ")
        ));
        self
    }

    /// Changes the node's options (the origin's port is set at `start`).
    pub fn configure(mut self, f: impl FnOnce(&mut Options)) -> Self {
        f(&mut self.opts);
        self
    }

    /// Starts s3s-fs (unless `origin_down`), the tap, and the node, and
    /// waits until the node is ready.
    pub async fn start(mut self) -> World {
        let s3 = if self.origin_down || self.own_origin.is_some() {
            None
        } else {
            Some(S3::start(&self.objects).await)
        };
        let tap = match (&s3, self.tap) {
            (Some(s3), true) => Some(Tap::start(s3.port).await),
            (None, true) => panic!("a tap needs an origin: not with origin_down()"),
            _ => None,
        };
        self.opts.origin_port = match (self.own_origin, &tap, &s3) {
            (Some(port), _, _) => port,
            (None, Some(tap), _) => tap.port,
            (None, None, Some(s3)) => s3.port,
            (None, None, None) => free_port(),
        };
        let node = Node::start(self.opts.clone()).await;
        World {
            node,
            token: hs256(&good_claims("alice")),
            s3,
            tap,
            cache_dir: self.cache_dir,
            tls: self.tls,
            opts: self.opts,
        }
    }

    /// Runs `cdn-node check` on the configuration the node would be started
    /// with (its origin a port nothing listens on); starts nothing.
    pub fn check(mut self) -> Output {
        self.opts.origin_port = free_port();
        Node::check(&self.opts)
    }
}

/// A running world; everything in it stops when it is dropped.
pub struct World {
    pub node: Node,
    /// A good token for `alice` (HS256, key `main`, an hour left).
    pub token: String,
    s3: Option<S3>,
    tap: Option<Tap>,
    cache_dir: Option<tempfile::TempDir>,
    tls: Option<Tls>,
    opts: Options,
}

impl World {
    pub fn builder() -> Builder {
        Builder {
            objects: Vec::new(),
            origin_down: false,
            own_origin: None,
            tap: false,
            cache_dir: None,
            tls: None,
            // The origin's port is known once it runs.
            opts: Options::new(0),
        }
    }

    pub fn s3(&self) -> &S3 {
        self.s3
            .as_ref()
            .expect("a world built with origin_down() has no S3")
    }

    pub fn tap(&self) -> &Tap {
        self.tap
            .as_ref()
            .expect("a world built without tap() has none")
    }

    pub fn cache_dir(&self) -> &Path {
        self.cache_dir
            .as_ref()
            .expect("a world built without cache() has no cache folder")
            .path()
    }

    pub fn tls(&self) -> &Tls {
        self.tls
            .as_ref()
            .expect("a world built without tls() has none")
    }

    /// `path` (which may have a query) with the world's token as `jwt`.
    pub fn target(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}jwt={}", self.token)
    }

    /// The node's `http://` URL of `path` with the world's token.
    pub fn url(&self, path: &str) -> String {
        self.node.url(&self.target(path))
    }

    /// GET `path` with the world's token.
    pub async fn get(&self, path: &str) -> (u16, Headers, Vec<u8>) {
        self.request("GET", path, &[]).await
    }

    /// `method` on `path` with the world's token and `headers`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Headers, Vec<u8>) {
        raw(self.node.http, method, &self.target(path), headers).await
    }

    /// The status of a GET of `path` with `token` in the `jwt` parameter.
    pub async fn status(&self, path: &str, token: &str) -> u16 {
        raw(self.node.http, "GET", &format!("{path}?jwt={token}"), &[])
            .await
            .0
    }

    pub async fn metrics(&self) -> String {
        self.node.metrics().await
    }

    /// One sample of the node's metrics (see `http::metric`).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.node.metrics().await, name, labels)
    }

    /// Waits until the node holds `n` objects (records and slices
    /// included): a fill is committed just after its answer ends.
    pub async fn stored(&self, n: f64) {
        super::eventually(
            &format!("{n} objects stored"),
            std::time::Duration::from_secs(10),
            || async {
                let now = self.metric("cdn_node_cache_stored_objects", &[]).await;
                (now == n).then_some(())
            },
        )
        .await
    }

    /// `POST /purge?QUERY` on the admin listener with `token`: the status
    /// and the body.
    pub async fn purge(&self, query: &str, token: &str) -> (u16, Vec<u8>) {
        let auth = format!("Bearer {token}");
        let (status, _, body) = raw(
            self.node.admin,
            "POST",
            &format!("/purge?{query}"),
            &[("authorization", &auth), ("content-length", "0")],
        )
        .await;
        (status, body)
    }

    /// Kills the node (SIGKILL, as a crash would) and starts it again with
    /// the same options and cache folder.
    pub async fn restart(&mut self) {
        self.node.kill();
        self.node = Node::start(self.opts.clone()).await;
    }

    /// Stops the node (SIGTERM: it ends what it was doing, its last fills
    /// committed) and starts it again with the same options and folder.
    pub async fn restart_gracefully(&mut self) {
        self.node.signal("TERM");
        let status = self.node.exited(std::time::Duration::from_secs(30)).await;
        assert!(status.success(), "{status}: {}", self.node.stderr());
        self.node = Node::start(self.opts.clone()).await;
    }

    /// A graceful upgrade to the options `configure` changes: a second
    /// process takes over the node's folder and ports once the running one
    /// gets SIGQUIT (see `Node::upgrade`). The world's node is the new
    /// process from then on; the old one is returned.
    pub async fn upgrade(&mut self, configure: impl FnOnce(&mut Options)) -> Node {
        configure(&mut self.opts);
        let new = self.node.upgrade(&self.opts).await;
        std::mem::replace(&mut self.node, new)
    }
}
