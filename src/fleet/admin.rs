//! The admin API of a fleet node: `POST /purge` and the denylist's `PUT`
//! and `DELETE` write rules to etcd instead of changing this node alone,
//! and answer once etcd acknowledged the write (503 when it cannot be
//! reached). The watch then applies the rule on every node, this one
//! included. `PUT /auth/denylist/jti/VALUE?exp=UNIX` leases the revocation
//! until the token's expiry.

use std::sync::Arc;

use http::{Response, StatusCode};

use super::status::Status;
use super::writer::{Revoked, Writer};
use crate::auth::denylist::DenyKind;
use crate::cache::purge::Scope;
use crate::request::query;

/// What the admin listener holds of the fleet.
pub struct FleetAdmin {
    pub writer: Arc<Writer>,
    pub status: Arc<Status>,
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    let body = body.into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    reply(status, "text/plain; charset=utf-8", body.to_string())
}

fn unavailable(e: &str) -> Response<Vec<u8>> {
    tracing::warn!(error = %e, "fleet: a rule could not be written to etcd");
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "etcd did not acknowledge the rule: try again\n",
    )
}

impl FleetAdmin {
    pub async fn purge(&self, scope: Scope) -> Response<Vec<u8>> {
        match self.writer.purge(scope).await {
            Ok(()) => reply(
                StatusCode::OK,
                "application/json",
                "{\"fleet\":true}\n".to_string(),
            ),
            Err(e) => unavailable(&e),
        }
    }

    /// `PUT`/`POST` (revoke) or `DELETE` (take back) of one entry.
    pub async fn denylist(
        &self,
        method: &str,
        kind: DenyKind,
        value: &str,
        raw_query: &str,
    ) -> Response<Vec<u8>> {
        match method {
            "PUT" | "POST" => {
                let exp = match exp(raw_query) {
                    Ok(exp) => exp,
                    Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
                };
                match self.writer.revoke(kind, value, exp).await {
                    Ok(Revoked::Written) => text(StatusCode::OK, "revoked\n"),
                    Ok(Revoked::AlreadyExpired) => {
                        text(StatusCode::OK, "already expired: nothing to revoke\n")
                    }
                    Err(e) => unavailable(&e),
                }
            }
            "DELETE" => match self.writer.unrevoke(kind, value).await {
                Ok(true) => text(StatusCode::OK, "removed\n"),
                Ok(false) => text(StatusCode::NOT_FOUND, "no such fleet entry\n"),
                Err(e) => unavailable(&e),
            },
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "use PUT or DELETE\n"),
        }
    }

    /// `/readyz`'s lines about the fleet, and whether the node may serve.
    pub fn readiness(&self) -> (bool, &'static str) {
        if !self.status.listed() {
            (
                false,
                "fleet: the rules have not been listed from etcd yet\n",
            )
        } else if !self.status.watching() {
            (
                true,
                "fleet: etcd unreachable, serving with the rules applied so far\n",
            )
        } else {
            (true, "")
        }
    }
}

/// The `exp` parameter: the token's expiry in Unix seconds, if given.
fn exp(raw_query: &str) -> Result<Option<u64>, &'static str> {
    let pairs = query::parse(raw_query).map_err(|_| "bad query encoding\n")?;
    match pairs.iter().find(|(n, _)| n == "exp") {
        None => Ok(None),
        Some((_, v)) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| "exp is the token's expiry in Unix seconds, e.g. ?exp=1767225600\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_parameter() {
        assert_eq!(exp(""), Ok(None));
        assert_eq!(exp("exp=1767225600"), Ok(Some(1_767_225_600)));
        assert!(exp("exp=tomorrow").is_err());
        assert!(exp("exp=-1").is_err());
    }
}
