//! The token policy's routes on the admin listener.
//!
//! - `GET /auth/denylist`: every entry, `KIND VALUE` one a line.
//! - `PUT /auth/denylist/{jti|sub}/VALUE`: revoke (VALUE percent-decoded); effective on the
//!   next request.
//! - `DELETE /auth/denylist/{jti|sub}/VALUE`: take back an entry added here (file entries
//!   are changed in the file).

use http::{Response, StatusCode};
use percent_encoding::percent_decode_str;

use crate::auth::denylist::DenyKind;
use crate::auth::verifier::Verifier;

/// Where the routes live.
pub const PREFIX: &str = "/auth/";

fn reply(status: StatusCode, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

/// The entry `/KIND/VALUE` (the path after `/auth/denylist`) names, or the refusal to send.
pub fn entry(rest: &str) -> Result<(DenyKind, String), Box<Response<Vec<u8>>>> {
    let Some((kind, value)) = rest.strip_prefix('/').and_then(|r| r.split_once('/')) else {
        return Err(Box::new(reply(
            StatusCode::NOT_FOUND,
            "use /auth/denylist/jti/VALUE or /auth/denylist/sub/VALUE\n",
        )));
    };
    let Some(kind) = DenyKind::parse(kind) else {
        return Err(Box::new(reply(
            StatusCode::NOT_FOUND,
            "the kind is jti or sub: /auth/denylist/jti/VALUE\n",
        )));
    };
    match percent_decode_str(value).decode_utf8() {
        Ok(value) if !value.is_empty() => Ok((kind, value.into_owned())),
        _ => Err(Box::new(reply(
            StatusCode::BAD_REQUEST,
            "give a UTF-8 value\n",
        ))),
    }
}

/// The answer for `method path`, or `None` when the path is not one of these routes.
pub fn answer(verifier: &Verifier, method: &str, path: &str) -> Option<Response<Vec<u8>>> {
    let rest = path.strip_prefix("/auth/denylist")?;
    if rest.is_empty() {
        return Some(match method {
            "GET" | "HEAD" => reply(StatusCode::OK, verifier.denylist_listing()),
            _ => reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        });
    }
    let (kind, value) = match entry(rest) {
        Ok(e) => e,
        Err(refused) => return Some(*refused),
    };
    Some(match method {
        "PUT" | "POST" => {
            let added = verifier.set_denied(kind, &value, true);
            reply(
                StatusCode::OK,
                if added {
                    "revoked\n"
                } else {
                    "already revoked\n"
                },
            )
        }
        "DELETE" => {
            if verifier.set_denied(kind, &value, false) {
                reply(StatusCode::OK, "removed\n")
            } else {
                reply(StatusCode::NOT_FOUND, "no such admin entry\n")
            }
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, "use PUT or DELETE\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::keys::{key_entry, load, settings};
    use jsonwebtoken::Algorithm;

    #[test]
    fn routes() {
        let v = load(&settings(vec![key_entry(Some("hs"), Algorithm::HS256)]));
        let status =
            |method: &str, path: &str| answer(&v, method, path).map(|r| r.status().as_u16());
        assert_eq!(status("GET", "/metrics"), None);
        assert_eq!(status("PUT", "/auth/denylist/jti/a%20b"), Some(200));
        assert_eq!(status("PUT", "/auth/denylist/sub/alice"), Some(200));
        assert_eq!(status("PUT", "/auth/denylist/kid/x"), Some(404));
        assert_eq!(status("PUT", "/auth/denylist/jti/"), Some(400));
        assert_eq!(status("PATCH", "/auth/denylist/jti/x"), Some(405));
        assert_eq!(status("POST", "/auth/denylist"), Some(405));
        let listing = answer(&v, "GET", "/auth/denylist").map(|r| r.into_body());
        assert_eq!(listing.as_deref(), Some(&b"jti a b\nsub alice\n"[..]));
        assert_eq!(status("DELETE", "/auth/denylist/jti/a%20b"), Some(200));
        assert_eq!(status("DELETE", "/auth/denylist/jti/a%20b"), Some(404));
    }
}
