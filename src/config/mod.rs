//! Configuration: one YAML file, read into strict sections, validated as a
//! whole so that every problem is reported at once, then turned into the
//! node's internal settings and Pingora's `ServerConf`.

mod ops;
mod problem;
pub mod secret;
pub mod sections;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pingora::server::configuration::ServerConf;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

pub use problem::Problem;
use sections::{
    AdminSection, CacheSection, LimitsSection, ListenersSection, LogSection, OriginKind,
    OriginSection, ServerSection,
};

use crate::auth::Verifier;
use crate::auth::settings::AuthSettings;
use crate::cache::settings::CacheConfig;
use crate::cluster::settings::{ClusterConfig, ClusterSection};
use crate::cors::settings::{CorsConfig, CorsSection};
use crate::origin::settings::OriginConfig;

const SECTIONS: &[&str] = &[
    "server",
    "listeners",
    "admin",
    "origin",
    "auth",
    "cache",
    "log",
    "limits",
    "cors",
    "cluster",
    "fleet",
];

/// Everything the node runs on, validated and with secrets loaded.
pub struct Config {
    pub server: ServerSection,
    pub http_listeners: Vec<SocketAddr>,
    /// HTTPS listeners, their certificate and key checked.
    pub https_listeners: Vec<crate::tls::HttpsListener>,
    pub limits: crate::limits::Limits,
    /// `log.access_file`, made absolute (the file is reopened after Pingora
    /// may have changed the working folder).
    pub access_file: Option<PathBuf>,
    pub admin_listen: SocketAddr,
    /// The bearer token `/purge` requires; purging is off without one.
    pub admin_token: Option<String>,
    pub origin: OriginConfig,
    /// `None`: no caching, every request goes to the origin.
    pub cache: Option<CacheConfig>,
    /// `None`: CORS off (no origin allowed).
    pub cors: Option<CorsConfig>,
    /// `None`: a node outside any fleet.
    pub cluster: Option<ClusterConfig>,
    pub auth: Verifier,
    pub log: LogSection,
    /// `None`: a standalone node, which never talks to etcd.
    pub fleet: Option<crate::fleet::settings::FleetConfig>,
}

impl Config {
    /// Reads and validates `path`, reading secrets from the process
    /// environment where the file says so.
    pub fn load(path: &Path) -> Result<Config, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Problem::new(
                "(file)",
                format!(
                    "{} cannot be read ({e}): give the path of the YAML configuration, e.g. -c conf/cdn-node.yaml",
                    path.display()
                ),
            )]
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let env = |name: &str| std::env::var(name).ok();
        Self::from_yaml(&text, &base_dir, &env)
    }

    /// Validates YAML text; `base_dir` resolves relative file paths and `env`
    /// answers environment look-ups.
    pub fn from_yaml(
        text: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<Problem>> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| {
            vec![Problem::new(
                "(file)",
                format!("is not valid YAML ({e}): fix the syntax at the position given"),
            )]
        })?;
        let Value::Mapping(map) = root else {
            return Err(vec![Problem::new(
                "(file)",
                "the top level must be a mapping of sections: server, listeners, admin, origin, auth, cache, log, limits, cors, fleet",
            )]);
        };
        let mut problems = Vec::new();
        for key in map.keys() {
            let name = key.as_str().unwrap_or("");
            if !SECTIONS.contains(&name) {
                problems.push(Problem::new(
                    serde_yaml::to_string(key)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                    format!("unknown section: expected one of {}", SECTIONS.join(", ")),
                ));
            }
        }
        let get = |name: &str| map.get(name).cloned();
        let server: Option<ServerSection> = section(
            &get("server"),
            "server",
            Some(ServerSection::default),
            &mut problems,
        );
        let listeners: Option<ListenersSection> =
            section(&get("listeners"), "listeners", None, &mut problems);
        let admin: Option<AdminSection> = section(&get("admin"), "admin", None, &mut problems);
        let origin: Option<OriginSection> = section(&get("origin"), "origin", None, &mut problems);
        let auth: Option<AuthSettings> = section(&get("auth"), "auth", None, &mut problems);
        let cache: Option<Option<CacheSection>> =
            section(&get("cache"), "cache", Some(|| None), &mut problems);
        let log: Option<LogSection> =
            section(&get("log"), "log", Some(LogSection::default), &mut problems);
        let cors: Option<CorsSection> = section(
            &get("cors"),
            "cors",
            Some(CorsSection::default),
            &mut problems,
        );
        let cluster: Option<Option<ClusterSection>> =
            section(&get("cluster"), "cluster", Some(|| None), &mut problems);
        let fleet: Option<Option<crate::fleet::settings::FleetSection>> =
            section(&get("fleet"), "fleet", Some(|| None), &mut problems);
        let limits: Option<LimitsSection> = section(
            &get("limits"),
            "limits",
            Some(LimitsSection::default),
            &mut problems,
        );

        if let Some(s) = &server
            && (s.threads == 0 || s.threads > sections::MAX_THREADS)
        {
            problems.push(Problem::new(
                "server.threads",
                format!(
                    "{} is out of range: use 1 to {} worker threads",
                    s.threads,
                    sections::MAX_THREADS
                ),
            ));
        }
        let http_listeners = listeners.as_ref().map(|l| {
            if l.http.is_empty() && l.https.is_empty() {
                problems.push(Problem::new(
                    "listeners.http",
                    "is empty and there is no listeners.https: give at least one IP:PORT, e.g. [\"0.0.0.0:8080\"]",
                ));
            }
            l.http
                .iter()
                .enumerate()
                .filter_map(|(i, a)| socket_addr(&format!("listeners.http[{i}]"), a, &mut problems))
                .collect::<Vec<_>>()
        });
        let https_listeners = listeners
            .as_ref()
            .map(|l| ops::https_listeners(&l.https, base_dir, &mut problems));
        let limits = limits.and_then(|l| ops::limits(&l, &mut problems));
        if let Some(l) = &log {
            if l.access_buffer.0 > 16 << 20 {
                problems.push(Problem::new(
                    "log.access_buffer",
                    format!(
                        "{} bytes is out of range: use 0 (a write per line) to 16MiB",
                        l.access_buffer.0
                    ),
                ));
            }
            if !(10..=60_000).contains(&l.access_flush_ms) {
                problems.push(Problem::new(
                    "log.access_flush_ms",
                    format!(
                        "{} is out of range: use 10 to 60000 milliseconds",
                        l.access_flush_ms
                    ),
                ));
            }
        }
        let access_file = log
            .as_ref()
            .and_then(|l| l.access_file.as_ref())
            .map(|f| std::path::absolute(base_dir.join(f)).unwrap_or_else(|_| base_dir.join(f)));
        let admin_listen = admin
            .as_ref()
            .and_then(|a| socket_addr("admin.listen", &a.listen, &mut problems));
        if let (Some(a), Some(h)) = (admin_listen, &http_listeners)
            && (h.contains(&a) || https_listeners.iter().flatten().any(|l| l.addr == a))
        {
            problems.push(Problem::new(
                "admin.listen",
                format!("{a} is also a client listener: give the admin listener its own port"),
            ));
        }
        let admin_token = admin
            .as_ref()
            .and_then(|a| admin_token(a, base_dir, env, &mut problems));
        let origin =
            origin.and_then(|o| OriginConfig::from_section(&o, base_dir, env, &mut problems));
        let cluster = cluster
            .map(|c| c.and_then(|c| ClusterConfig::from_section(&c, base_dir, env, &mut problems)));
        if let (Some(o), Some(None)) = (&origin, &cluster)
            && !o.parents.is_empty()
        {
            problems.push(Problem::new(
                "origin.parents",
                "needs a cluster section: the shields accept hops signed with the fleet's secret (cluster.secret_file) only",
            ));
        }
        if let (Some(Some(c)), Some(h)) = (&cluster, &http_listeners)
            && (h.contains(&c.listen)
                || https_listeners.iter().flatten().any(|l| l.addr == c.listen)
                || admin_listen == Some(c.listen))
        {
            problems.push(Problem::new(
                "cluster.listen",
                format!(
                    "{} is also a client or admin listener: give the peer listener its own port",
                    c.listen
                ),
            ));
        }
        let origin_kind = origin.as_ref().map_or(OriginKind::S3, |o| o.kind);
        let cache = cache.map(|c| {
            c.and_then(|c| CacheConfig::from_section(&c, origin_kind, base_dir, &mut problems))
        });
        let cors = cors.map(|c| {
            CorsConfig::from_section(&c, &mut problems).map(|mut config| {
                // What the node adds that a page may want to read.
                config
                    .exposed
                    .extend(auth.iter().map(|a| a.renewal_header.clone()));
                config.exposed.extend(
                    cache
                        .iter()
                        .flatten()
                        .filter_map(|c| c.status_header.clone()),
                );
                config
            })
        });
        let fleet = fleet.map(|f| {
            f.and_then(|f| {
                crate::fleet::settings::FleetConfig::from_section(&f, base_dir, &mut problems)
            })
        });
        let auth = auth.and_then(|a| match Verifier::from_settings(&a, base_dir) {
            Ok(v) => Some(v),
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        });
        match (
            server,
            (http_listeners, https_listeners, limits),
            admin_listen,
            origin,
            auth,
            cache,
            log,
            (cors, cluster, fleet),
        ) {
            (
                Some(server),
                (Some(http_listeners), Some(https_listeners), Some(limits)),
                Some(admin_listen),
                Some(origin),
                Some(auth),
                Some(cache),
                Some(log),
                (Some(cors), Some(cluster), Some(fleet)),
            ) if problems.is_empty() => Ok(Config {
                server,
                http_listeners,
                https_listeners,
                limits,
                access_file,
                admin_listen,
                admin_token,
                origin,
                cache,
                auth,
                log,
                cors,
                cluster,
                fleet,
            }),
            _ => Err(problems),
        }
    }

    /// Pingora's own settings derived from ours.
    pub fn server_conf(&self, daemon: bool) -> ServerConf {
        let s = &self.server;
        ServerConf {
            threads: s.threads,
            pid_file: s.pid_file.clone(),
            upgrade_sock: s.upgrade_sock.clone(),
            error_log: s.error_log.clone(),
            grace_period_seconds: s.grace_period_seconds,
            graceful_shutdown_timeout_seconds: s.graceful_shutdown_timeout_seconds,
            daemon,
            // One runtime per thread: fewer cross-thread wake-ups, about a
            // fifth less CPU per small hit. Its SIGINT hang is avoided in
            // `fast_exit`.
            work_stealing: false,
            ..ServerConf::default()
        }
    }
}

/// Deserializes one section, reporting a missing required section or a
/// shape error under the section's name. `default` stands in for an absent
/// optional section.
fn section<T: DeserializeOwned>(
    value: &Option<Value>,
    name: &str,
    default: Option<fn() -> T>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match (value, default) {
        (None | Some(Value::Null), Some(make)) => Some(make()),
        (None | Some(Value::Null), None) => {
            problems.push(Problem::new(
                name,
                "missing: this section is required (see conf/cdn-node.yaml for an example)",
            ));
            None
        }
        (Some(v), _) => match serde_yaml::from_value::<T>(v.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                let problem = match field_of::<T>(v) {
                    Some((field, message)) => Problem::new(format!("{name}.{field}"), message),
                    None => Problem::new(name, e.to_string()),
                };
                problems.push(problem);
                None
            }
        },
    }
}

/// The field a section's shape error is about, and the message without it.
/// An error from a parsed `Value` carries no path; the same section parsed
/// from text does (`memory_size: "lots" is not a size...`).
fn field_of<T: DeserializeOwned>(v: &Value) -> Option<(String, String)> {
    let text = serde_yaml::to_string(v).ok()?;
    let e = serde_yaml::from_str::<T>(&text).err()?;
    let shown = e.to_string();
    // "path: message at line L column C": keep the path and the message.
    let (path, rest) = shown.split_once(": ")?;
    if path.contains(' ') {
        return None;
    }
    let message = match rest.rfind(" at line ") {
        Some(i) => &rest[..i],
        None => rest,
    };
    Some((path.to_string(), message.to_string()))
}

/// The admin token from `admin.token_file` or `admin.token_env`; `None`
/// when neither is set (purge disabled) or on a reported problem.
fn admin_token(
    admin: &AdminSection,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let token = match (&admin.token_file, &admin.token_env) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                "admin.token_file",
                "both token_file and token_env are set: keep one",
            ));
            return None;
        }
        (Some(file), None) => secret::from_file("admin.token_file", file, base_dir, problems)?,
        (None, Some(var)) => secret::from_env("admin.token_env", var, env, problems)?,
        (None, None) => return None,
    };
    if token.len() < MIN_ADMIN_TOKEN_BYTES {
        problems.push(Problem::new(
            if admin.token_file.is_some() { "admin.token_file" } else { "admin.token_env" },
            format!(
                "the token is shorter than {MIN_ADMIN_TOKEN_BYTES} bytes: use a long random value, e.g. `openssl rand -hex 32`"
            ),
        ));
        return None;
    }
    Some(token)
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

pub(crate) fn socket_addr(
    key: &str,
    value: &str,
    problems: &mut Vec<Problem>,
) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(Problem::new(
                key,
                format!("{value:?} is not IP:PORT: write e.g. 0.0.0.0:8080 or [::]:8080"),
            ));
            None
        }
    }
}
