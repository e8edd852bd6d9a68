//! The real `cdn-node` binary, started on fresh ports with a configuration
//! written for the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::s3::{ACCESS_KEY, BUCKET, SECRET_KEY};
use super::{eventually, free_port};

/// The HMAC secret of the test key `main` (HS256).
pub const HMAC_SECRET: &str = "test-hmac-secret-that-is-long-enough-0123";
pub const ISSUER: &str = "https://learn.example";
pub const AUDIENCE: &str = "cdn-node";

#[derive(Clone)]
pub struct Options {
    pub origin_port: u16,
    pub access_key: String,
    pub secret_key: String,
    pub forward_query: Vec<String>,
    pub public_prefixes: Vec<String>,
    pub read_timeout_ms: u64,
    /// Extra lines appended under `auth.keys` (indented YAML list items).
    pub extra_keys: String,
    /// Extra lines appended to the `auth:` section (indented two spaces).
    pub extra_auth: String,
    /// Files written into the node's folder before it starts (name, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// A `cache:` section body (indented by two spaces), or none.
    pub cache: Option<String>,
    /// The admin token for `/purge` and `/auth/`.
    pub admin_token: Option<String>,
    /// An HTTPS listener with these certificate and key files (names in the
    /// node's folder, written through `files`).
    pub https: Option<(String, String)>,
    /// YAML appended at the end (whole sections: `limits:`, `log:`).
    pub extra_yaml: String,
    /// Extra lines of the `server:` section (indented two spaces), e.g.
    /// `grace_period_seconds`.
    pub server_extra: String,
    /// The value of `auth.audience` as YAML (`"cdn-node"`, `[a, b]`), or
    /// `None` to leave the key out.
    pub audience: Option<String>,
    /// Environment variables of the node's process (a preloaded library).
    pub env: Vec<(String, String)>,
    /// Extra lines of the `origin:` section (indented two spaces), e.g.
    /// `parents`.
    pub origin_extra: String,
    /// A plain HTTP origin (`kind: http`) instead of S3.
    pub http_origin: bool,
}

/// A `cache:` section for a folder, with extra settings appended.
pub fn cache_section(dir: &std::path::Path, extra: &str) -> String {
    let free = if extra.contains("min_free_space:") {
        ""
    } else {
        "  min_free_space: 0\n"
    };
    format!("  dir: {}\n{free}{extra}", dir.display())
}

impl Options {
    pub fn new(origin_port: u16) -> Options {
        Options {
            origin_port,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            forward_query: Vec::new(),
            public_prefixes: Vec::new(),
            read_timeout_ms: 5_000,
            extra_keys: String::new(),
            extra_auth: String::new(),
            files: Vec::new(),
            cache: None,
            admin_token: None,
            https: None,
            extra_yaml: String::new(),
            server_extra: String::new(),
            audience: Some(format!("\"{AUDIENCE}\"")),
            env: Vec::new(),
            origin_extra: String::new(),
            http_origin: false,
        }
    }
}

pub struct Node {
    pub http: SocketAddr,
    /// The HTTPS listener, when `Options::https` asked for one.
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The node's folder: its configuration, key files and logs. Shared
    /// with the process that takes over in a graceful upgrade.
    pub dir: Arc<tempfile::TempDir>,
    /// 0 for the first process in `dir`, 1 for the one that took over
    /// from it in a graceful upgrade, and so on: names its log files.
    generation: u32,
    child: Child,
}

/// The files in the node's folder that process `generation` writes its
/// stdout (the access log) and stderr to.
fn log_files(generation: u32) -> (String, String) {
    match generation {
        0 => ("access.log".into(), "stderr.log".into()),
        n => (format!("access-{n}.log"), format!("stderr-{n}.log")),
    }
}

fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The loopback address with `port`.
fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Writes the key files and `opts.files` into the node's folder.
fn write_files(opts: &Options, dir: &Path) {
    std::fs::write(dir.join("hmac.key"), HMAC_SECRET).expect("key file");
    if let Some(token) = &opts.admin_token {
        std::fs::write(dir.join("admin.token"), token).expect("token file");
    }
    for (name, contents) in &opts.files {
        std::fs::write(dir.join(name), contents).expect("extra file");
    }
}

impl Node {
    /// The configuration file for `opts` with these ports, the node's
    /// folder being `dir`.
    pub fn config_yaml(
        opts: &Options,
        http: u16,
        https: Option<u16>,
        admin: u16,
        dir: &Path,
    ) -> String {
        let mut yaml = format!(
            r#"server:
  threads: 2
{server_extra}  pid_file: {dir}/cdn-node.pid
  upgrade_sock: {dir}/upgrade.sock
listeners:
  http: ["127.0.0.1:{http}"]
admin:
  listen: "127.0.0.1:{admin}"
origin:
  endpoint: "http://127.0.0.1:{origin}"
  bucket: {bucket}
  region: us-east-1
  credentials:
    from: env
  connect_timeout_ms: 1000
  read_timeout_ms: {read_timeout}
  forward_query: {forward}
{origin_extra}auth:
  keys:
    - kid: main
      algorithm: HS256
      secret_file: hmac.key
{extra_keys}  issuer: "{issuer}"
{audience}  leeway_seconds: 5
  public_prefixes: {public}
{extra_auth}"#,
            dir = dir.display(),
            server_extra = opts.server_extra,
            origin = opts.origin_port,
            bucket = BUCKET,
            read_timeout = opts.read_timeout_ms,
            forward = yaml_list(&opts.forward_query),
            origin_extra = opts.origin_extra,
            public = yaml_list(&opts.public_prefixes),
            extra_keys = opts.extra_keys,
            extra_auth = opts.extra_auth,
            issuer = ISSUER,
            audience = opts
                .audience
                .as_ref()
                .map(|a| format!("  audience: {a}\n"))
                .unwrap_or_default(),
        );
        if opts.http_origin {
            yaml = yaml.replace(
                &format!(
                    "  bucket: {BUCKET}\n  region: us-east-1\n  credentials:\n    from: env\n"
                ),
                "  kind: http\n",
            );
        }
        if let Some(cache) = &opts.cache {
            yaml.push_str("cache:\n");
            yaml.push_str(cache);
            yaml.push('\n');
        }
        if let (Some((cert, key)), Some(port)) = (&opts.https, https) {
            yaml = yaml.replace(
                &format!("  http: [\"127.0.0.1:{http}\"]\n"),
                &format!(
                    "  http: [\"127.0.0.1:{http}\"]\n  https:\n    - {{ listen: \"127.0.0.1:{port}\", cert_file: {cert}, key_file: {key} }}\n"
                ),
            );
        }
        yaml.push_str(&opts.extra_yaml);
        if opts.admin_token.is_some() {
            yaml = yaml.replace(
                &format!("  listen: \"127.0.0.1:{admin}\"\n"),
                &format!("  listen: \"127.0.0.1:{admin}\"\n  token_file: admin.token\n"),
            );
        }
        yaml
    }

    /// Runs `cdn-node check` on the configuration `opts` describe (with
    /// ports that were free a moment ago); starts nothing.
    pub fn check(opts: &Options) -> Output {
        let dir = tempfile::tempdir().expect("tempdir");
        write_files(opts, dir.path());
        let https = opts.https.as_ref().map(|_| free_port());
        let yaml = Self::config_yaml(opts, free_port(), https, free_port(), dir.path());
        let conf = dir.path().join("cdn-node.yaml");
        std::fs::write(&conf, yaml).expect("conf");
        Command::new(env!("CARGO_BIN_EXE_cdn-node"))
            .args(["check", "-c"])
            .arg(&conf)
            .env("AWS_ACCESS_KEY_ID", &opts.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &opts.secret_key)
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .expect("run cdn-node check")
    }

    /// Starts `cdn-node run` on the configuration in `dir`, with `-u`
    /// (take the sockets over) after the first generation.
    fn spawn(opts: &Options, dir: &Path, generation: u32) -> Child {
        let (out, err) = log_files(generation);
        let stdout = std::fs::File::create(dir.join(out)).expect("log");
        let stderr = std::fs::File::create(dir.join(err)).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdn-node"));
        cmd.args(["run", "-c"]).arg(dir.join("cdn-node.yaml"));
        if generation > 0 {
            cmd.arg("-u");
        }
        cmd.env("AWS_ACCESS_KEY_ID", &opts.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &opts.secret_key)
            .env_remove("AWS_SESSION_TOKEN")
            .env("RUST_LOG", "warn")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn cdn-node")
    }

    /// Starts the node on fresh ports and waits until it is ready; tries
    /// again on other ports when one was taken in between.
    pub async fn start(opts: Options) -> Node {
        let mut last_err = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            write_files(&opts, dir.path());
            let (http, admin) = (free_port(), free_port());
            let https = opts.https.as_ref().map(|_| free_port());
            let yaml = Self::config_yaml(&opts, http, https, admin, dir.path());
            std::fs::write(dir.path().join("cdn-node.yaml"), yaml).expect("conf");
            let child = Self::spawn(&opts, dir.path(), 0);
            let mut node = Node {
                http: local(http),
                https: https.map(local),
                admin: local(admin),
                dir: Arc::new(dir),
                generation: 0,
                child,
            };
            if node.wait_ready().await {
                return node;
            }
            last_err = node.stderr();
        }
        panic!("cdn-node did not start:\n{last_err}");
    }

    /// Pingora's graceful upgrade, as deploy/systemd/cdn-node-reload does
    /// it: writes the configuration `opts` describe (on the same ports, in
    /// the same folder), starts a second process with `run -u` and waits
    /// until it has bound the upgrade socket. That process takes the
    /// listening sockets over once this one gets SIGQUIT.
    pub async fn upgrade(&self, opts: &Options) -> Node {
        let dir = self.dir.path();
        write_files(opts, dir);
        let https = self.https.map(|a| a.port());
        let yaml = Self::config_yaml(opts, self.http.port(), https, self.admin.port(), dir);
        std::fs::write(dir.join("cdn-node.yaml"), yaml).expect("conf");
        let sock = dir.join("upgrade.sock");
        let _ = std::fs::remove_file(&sock);
        let generation = self.generation + 1;
        let child = Self::spawn(opts, dir, generation);
        let mut node = Node {
            http: self.http,
            https: self.https,
            admin: self.admin,
            dir: self.dir.clone(),
            generation,
            child,
        };
        eventually(
            "the new process to bind the upgrade socket",
            Duration::from_secs(20),
            || {
                let bound = sock.exists();
                async move { bound.then_some(()) }
            },
        )
        .await;
        assert!(
            node.is_running(),
            "the upgrading process exited:\n{}",
            node.stderr()
        );
        node
    }

    /// Waits until `/readyz` answers 200 and the client port accepts;
    /// false when the process exited (a port was taken).
    async fn wait_ready(&mut self) -> bool {
        let (admin, http) = (self.admin, self.http);
        let child = &mut self.child;
        let mut exited = false;
        let ready = eventually("cdn-node to be ready", Duration::from_secs(30), || {
            if child.try_wait().ok().flatten().is_some() {
                exited = true;
            }
            let gone = exited;
            async move {
                if gone {
                    return Some(false);
                }
                let status = super::http::get_status(admin, "/readyz").await?;
                if status != 200 {
                    return None;
                }
                tokio::net::TcpStream::connect(http)
                    .await
                    .ok()
                    .map(|_| true)
            }
        })
        .await;
        // A process that lost a port to another test exits at once; the
        // probe that found it ready may have reached that other server.
        ready && !exited && self.child.try_wait().ok().flatten().is_none()
    }

    /// Sends a signal (`HUP`, `USR1`, ...) to the node.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits until the process has exited; its exit status.
    pub async fn exited(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        super::eventually("the node to exit", within, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.http, target)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(log_files(self.generation).1))
            .unwrap_or_default()
    }

    pub fn access_log_path(&self) -> PathBuf {
        self.dir.path().join(log_files(self.generation).0)
    }

    /// The access log lines written so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.access_log_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The metrics exposition; fails the test when the admin listener does
    /// not answer 200.
    pub async fn metrics(&self) -> String {
        let (status, _, body) = super::http::raw(self.admin, "GET", "/metrics", &[]).await;
        assert_eq!(status, 200);
        String::from_utf8(body).expect("utf-8 exposition")
    }

    /// The metrics exposition, or `None` when the admin listener does not
    /// answer (a node that is stopping).
    pub async fn try_metrics(&self) -> Option<String> {
        let (status, _, body) = super::http::try_raw(self.admin, "GET", "/metrics", &[])
            .await
            .ok()?;
        (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
