//! The operators' listener: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers), `/readyz` (the node can serve: keys loaded and
//! origin resolved), and, guarded by the admin bearer token, `POST /purge`
//! and the token denylist under `/auth/`. It is a separate listener so that
//! it can stay on a private address.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::auth::Verifier;
use crate::cache::engine::Engine;
pub(crate) use crate::cluster::purge::Purge as PurgeRequest;
use crate::metrics::Metrics;
use crate::request::{path, query};

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    pub cache: Option<&'static Engine>,
    /// The bearer token `/purge` and `/auth/` require; `None` disables them.
    pub token: Option<String>,
    /// The token policy's routes (`/auth/...`), when set.
    pub auth: Option<Arc<Verifier>>,
    /// With a `fleet` section: purges and revocations go to etcd.
    pub fleet: Option<crate::fleet::admin::FleetAdmin>,
    /// The PoP, for `POST /drain` and, without a fleet, for purges sent to
    /// the other nodes.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The shields, which those purges reach too.
    pub parents: Option<Arc<crate::cluster::ring::Ring>>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn purge_request(raw_query: &str) -> Result<PurgeRequest, &'static str> {
    let pairs = query::parse(raw_query).map_err(|_| "bad query encoding\n")?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    };
    purge_target(get("path"), get("prefix"))
}

/// The object (`path`, with its query) or the prefix a purge names,
/// canonicalized as requests are.
pub(crate) fn purge_target(
    object: Option<&str>,
    prefix: Option<&str>,
) -> Result<PurgeRequest, &'static str> {
    match (object, prefix) {
        (Some(target), None) => {
            let (p, q) = target.split_once('?').unwrap_or((target, ""));
            let p = path::canonicalize(p).map_err(|_| "path is not a valid object path\n")?;
            let q = query::parse(q).map_err(|_| "bad query in path\n")?;
            Ok(PurgeRequest::One(p, query::canonical(&q, |_| true)))
        }
        (None, Some(prefix)) => {
            let p = path::canonicalize(prefix).map_err(|_| "prefix is not a valid path\n")?;
            Ok(PurgeRequest::Prefix(p))
        }
        _ => Err("give exactly one of ?path=/object or ?prefix=/folder/\n"),
    }
}

impl Admin {
    pub async fn answer(
        &self,
        method: &str,
        path: &str,
        raw_query: &str,
        authorization: Option<&str>,
    ) -> Response<Vec<u8>> {
        if path == "/purge"
            || path == "/drain"
            || path.starts_with(crate::auth::admin_routes::PREFIX)
        {
            if let Some(refused) = self.unauthorized(authorization) {
                return refused;
            }
            if path == "/drain" {
                return self.drain(method);
            }
            if path == "/purge" {
                return self.purge(method, raw_query).await;
            }
            if let (Some(fleet), Some(rest)) = (&self.fleet, path.strip_prefix("/auth/denylist"))
                && !rest.is_empty()
                && method != "GET"
                && method != "HEAD"
            {
                return match crate::auth::admin_routes::entry(rest) {
                    Ok((kind, value)) => fleet.denylist(method, kind, &value, raw_query).await,
                    Err(refused) => *refused,
                };
            }
            return self
                .auth
                .as_deref()
                .and_then(|v| crate::auth::admin_routes::answer(v, method, path))
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n"));
        }
        if method != "GET" && method != "HEAD" {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match path {
            "/metrics" => {
                if let Some(engine) = self.cache {
                    self.metrics.refresh_cache(&engine.snapshot());
                }
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render(),
                )
            }
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => self.readyz(),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Checks the admin bearer token of a guarded route: the refusal to
    /// send, or `None` when the token is right.
    fn unauthorized(&self, authorization: Option<&str>) -> Option<Response<Vec<u8>>> {
        let Some(token) = &self.token else {
            return Some(text(
                StatusCode::NOT_FOUND,
                "not enabled: configure admin.token_file or admin.token_env\n",
            ));
        };
        let given = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if same_secret(given.as_bytes(), token.as_bytes()) {
            return None;
        }
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "a valid admin token is required\n",
        );
        r.headers_mut()
            .insert("www-authenticate", http::HeaderValue::from_static("Bearer"));
        Some(r)
    }

    /// 200 when the node can serve, else 503; a line more about the
    /// fleet's rules when the node has a `fleet` section.
    fn readyz(&self) -> Response<Vec<u8>> {
        let (fleet_ok, detail) = self.fleet.as_ref().map_or((true, ""), |f| f.readiness());
        if (self.ready)() && fleet_ok {
            text(StatusCode::OK, &format!("ready\n{detail}"))
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready\n{detail}"),
            )
        }
    }

    async fn purge(&self, method: &str, raw_query: &str) -> Response<Vec<u8>> {
        if let Some(fleet) = &self.fleet {
            if method != "POST" {
                return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
            }
            return match purge_request(raw_query) {
                Ok(request) => fleet.purge(request.scope()).await,
                Err(msg) => text(StatusCode::BAD_REQUEST, msg),
            };
        }
        let Some(engine) = self.cache else {
            return text(StatusCode::NOT_FOUND, "purge needs a cache section\n");
        };
        if method != "POST" {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        let purge = match purge_request(raw_query) {
            Ok(purge) => purge,
            Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
        };
        let purged = purge.apply(engine).await;
        self.metrics.cache_purged.inc_by(purged as u64);
        let Some(cluster) = &self.cluster else {
            return reply(
                StatusCode::OK,
                "application/json",
                format!("{{\"purged\":{purged}}}\n").into_bytes(),
            );
        };
        // Without the fleet's rules, the PoP's other members and the
        // shields are sent the purge, and remove their copies too.
        let mut to = cluster.others();
        to.extend(self.parents.iter().flat_map(|p| p.members().addrs()));
        let spread = crate::cluster::purge::spread(cluster, &to, &purge).await;
        let status = if spread.failed.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_GATEWAY
        };
        reply(status, "application/json", spread.json(purged).into_bytes())
    }

    /// `POST /drain`: the node leaves its PoP's ring (its health check
    /// answers 503, so the other nodes move its keys on) and goes on serving
    /// what it is sent, until it is stopped.
    fn drain(&self, method: &str) -> Response<Vec<u8>> {
        if method != "POST" {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match &self.cluster {
            Some(cluster) => {
                cluster.drain();
                text(StatusCode::OK, "draining\n")
            }
            None => text(StatusCode::NOT_FOUND, "no cluster section\n"),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.as_str().to_string();
        let path = req.uri.path().to_string();
        let raw_query = req.uri.query().unwrap_or("").to_string();
        let authorization = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut resp = self
            .answer(&method, &path, &raw_query, authorization.as_deref())
            .await;
        if method == "HEAD" {
            resp.body_mut().clear();
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes() {
        let admin = Admin {
            metrics: Arc::new(Metrics::new()),
            ready: Box::new(|| false),
            cache: None,
            token: Some("0123456789abcdef".into()),
            auth: None,
            fleet: None,
            cluster: None,
            parents: None,
        };
        const CASES: &[(&str, &str, u16)] = &[
            ("GET", "/metrics", 200),
            ("GET", "/healthz", 200),
            ("GET", "/readyz", 503),
            ("GET", "/other", 404),
            ("POST", "/metrics", 405),
            ("POST", "/purge", 401),
            ("PUT", "/auth/denylist/jti/x", 401),
        ];
        for (method, path, status) in CASES {
            let got = admin.answer(method, path, "", None).await.status().as_u16();
            assert_eq!(got, *status, "{method} {path}");
        }
        let body = admin.answer("GET", "/metrics", "", None).await.into_body();
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains("cdn_node_build_info")
        );
    }

    /// With a fleet section, `/readyz` waits for the rules' first listing
    /// and says when etcd is away.
    #[tokio::test]
    async fn readyz_follows_the_fleets_rules() {
        use crate::fleet::settings::FleetConfig;
        use crate::fleet::status::Status;
        use std::time::Duration;
        let config = FleetConfig {
            name: "prod".into(),
            pop: "fra1".into(),
            endpoints: vec!["http://127.0.0.1:9".into()],
            prefix: "/cdn-node".into(),
            tls: None,
            credentials: None,
            lease_ttl: Duration::from_secs(10),
            purge_rule_ttl: Duration::from_secs(3600),
            revocation_ttl: Duration::from_secs(3600),
        };
        let status = Arc::new(Status::default());
        let admin = Admin {
            metrics: Arc::new(Metrics::new()),
            ready: Box::new(|| true),
            cache: None,
            token: None,
            auth: None,
            cluster: None,
            parents: None,
            fleet: Some(crate::fleet::admin::FleetAdmin {
                writer: Arc::new(crate::fleet::writer::Writer::new(config)),
                status: status.clone(),
            }),
        };
        let readyz = |admin: &Admin| {
            let r = admin.readyz();
            (
                r.status().as_u16(),
                String::from_utf8(r.into_body()).unwrap(),
            )
        };
        let (code, body) = readyz(&admin);
        assert_eq!(code, 503);
        assert!(body.contains("not been listed"), "{body}");
        status.set_listed();
        let (code, body) = readyz(&admin);
        assert_eq!(code, 200);
        assert!(body.contains("etcd unreachable"), "{body}");
        status.set_watching(true);
        assert_eq!(readyz(&admin), (200, "ready\n".to_string()));
    }

    #[test]
    fn purge_requests() {
        let cases: &[(&str, Result<PurgeRequest, ()>)] = &[
            (
                "path=/courses/101/a.mp4",
                Ok(PurgeRequest::One(
                    "/courses/101/a.mp4".into(),
                    String::new(),
                )),
            ),
            (
                "path=/a%7E.mp4",
                Ok(PurgeRequest::One("/a~.mp4".into(), String::new())),
            ),
            (
                "path=/a.mp4%3Fb%3D1",
                Ok(PurgeRequest::One("/a.mp4".into(), "b=1".into())),
            ),
            (
                "prefix=/courses/101/",
                Ok(PurgeRequest::Prefix("/courses/101/".into())),
            ),
            ("path=/a/../b", Err(())),
            ("prefix=/a&path=/b", Err(())),
            ("", Err(())),
        ];
        for (q, want) in cases {
            assert_eq!(purge_request(q).map_err(|_| ()), *want, "{q}");
        }
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
