//! The operators' listener: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (the node can serve: keys loaded and
//! the origin resolved). It is a separate listener so that it can stay on a
//! private address.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::auth::Verifier;
use crate::metrics::Metrics;

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// The token policy's routes (`/auth/...`), when set.
    pub auth: Option<Arc<Verifier>>,
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

impl Admin {
    pub fn answer(&self, method: &str, path: &str) -> Response<Vec<u8>> {
        if let Some(resp) = self
            .auth
            .as_deref()
            .and_then(|v| crate::auth::admin_routes::answer(v, method, path))
        {
            return resp;
        }
        if method != "GET" && method != "HEAD" {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            );
        }
        match path {
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" if (self.ready)() => reply(StatusCode::OK, "text/plain", b"ready\n".to_vec()),
            "/readyz" => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"not ready\n".to_vec(),
            ),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.as_str().to_string();
        let path = req.uri.path().to_string();
        let mut resp = self.answer(&method, &path);
        if method == "HEAD" {
            resp.body_mut().clear();
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let admin = Admin {
            metrics: Arc::new(Metrics::new()),
            ready: Box::new(|| false),
            auth: None,
        };
        const CASES: &[(&str, &str, u16)] = &[
            ("GET", "/metrics", 200),
            ("GET", "/healthz", 200),
            ("GET", "/readyz", 503),
            ("GET", "/other", 404),
            ("POST", "/metrics", 405),
        ];
        for (method, path, status) in CASES {
            assert_eq!(
                admin.answer(method, path).status().as_u16(),
                *status,
                "{method} {path}"
            );
        }
        let body = admin.answer("GET", "/metrics").into_body();
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains("cdn_node_build_info")
        );
    }
}
