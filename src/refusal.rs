//! Every error answer the node gives a client, and its HTTP form, in one
//! place. Bodies are short fixed phrases: no internal text, no origin error,
//! no token detail ever reaches a client.

use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType};

/// Why a request is answered with an error instead of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Only GET and HEAD are served.
    MethodNotAllowed,
    /// The path or query is not acceptable; `reason` is a log/metric label.
    BadRequest { reason: &'static str },
    /// No valid token; `reason` is the auth rejection label.
    Unauthorized { reason: &'static str },
    /// A valid token that does not open this request (out of scope, bound to another
    /// address); `reason` is the auth rejection label.
    Forbidden { reason: &'static str },
    /// The origin has no such object (or the path names no object).
    NotFound,
    /// The origin refused us or failed; `kind` is the origin error label.
    BadGateway { kind: &'static str },
    /// The origin did not answer in time.
    GatewayTimeout,
    /// A bug or an unexpected local failure.
    Internal,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::MethodNotAllowed => 405,
            Refusal::BadRequest { .. } => 400,
            Refusal::Unauthorized { .. } => 401,
            Refusal::Forbidden { .. } => 403,
            Refusal::NotFound => 404,
            Refusal::BadGateway { .. } => 502,
            Refusal::GatewayTimeout => 504,
            Refusal::Internal => 500,
        }
    }

    pub fn body(&self) -> &'static str {
        match self {
            Refusal::MethodNotAllowed => "method not allowed\n",
            Refusal::BadRequest { .. } => "bad request\n",
            Refusal::Unauthorized { .. } => "a valid token is required\n",
            Refusal::Forbidden { .. } => "forbidden\n",
            Refusal::NotFound => "not found\n",
            Refusal::BadGateway { .. } => "bad gateway\n",
            Refusal::GatewayTimeout => "gateway timeout\n",
            Refusal::Internal => "internal error\n",
        }
    }

    /// The complete response header for this refusal. Error answers are
    /// never stored by any cache (`no-store`).
    pub fn header(&self) -> ResponseHeader {
        let body = self.body();
        // Building a header from a valid status and static values cannot fail.
        let mut h = ResponseHeader::build(self.status(), Some(5)).expect("valid status");
        let _ = h.insert_header("content-type", "text/plain; charset=utf-8");
        let _ = h.insert_header("content-length", body.len().to_string());
        let _ = h.insert_header("cache-control", "no-store");
        match self {
            Refusal::Unauthorized { .. } => {
                let _ = h.insert_header("www-authenticate", "Bearer error=\"invalid_token\"");
            }
            Refusal::MethodNotAllowed => {
                let _ = h.insert_header("allow", "GET, HEAD");
            }
            _ => {}
        }
        h
    }

    /// The refusal for a Pingora error that ended a proxied request, or
    /// `None` when the client is gone and nothing can be sent.
    pub fn from_proxy_error(e: &Error) -> Option<Refusal> {
        match e.esource() {
            ErrorSource::Upstream => Some(match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    Refusal::GatewayTimeout
                }
                _ => Refusal::BadGateway {
                    kind: origin_error_kind(e),
                },
            }),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
                _ => Some(Refusal::BadRequest { reason: "protocol" }),
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ErrorType::HTTPStatus(code) if *code == 504 => Some(Refusal::GatewayTimeout),
                ErrorType::HTTPStatus(code) if (500..600).contains(code) => {
                    Some(Refusal::BadGateway { kind: "protocol" })
                }
                _ => Some(Refusal::Internal),
            },
        }
    }
}

/// Whether the error is the client going away (closing or resetting its
/// connection), as opposed to a failure of ours or of the origin.
pub fn client_gone(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
        )
}

/// The `kind` label of an origin failure (metric and access log).
pub fn origin_error_kind(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectTimedout => "connect_timeout",
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::SocketError => "connect",
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => "tls",
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => "reset",
        _ => "protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_plain_body_and_no_store() {
        let all = [
            Refusal::MethodNotAllowed,
            Refusal::BadRequest { reason: "path" },
            Refusal::Unauthorized { reason: "expired" },
            Refusal::Forbidden {
                reason: "out_of_scope",
            },
            Refusal::NotFound,
            Refusal::BadGateway { kind: "s3_denied" },
            Refusal::GatewayTimeout,
            Refusal::Internal,
        ];
        for r in all {
            let h = r.header();
            assert_eq!(h.status.as_u16(), r.status());
            assert_eq!(
                h.headers.get("content-length").unwrap().to_str().unwrap(),
                r.body().len().to_string()
            );
            assert_eq!(h.headers.get("cache-control").unwrap(), "no-store");
            assert!(!r.body().contains("expired") && !r.body().contains("s3"));
            assert!(!r.body().contains("scope"));
        }
        assert_eq!(
            Refusal::Unauthorized { reason: "x" }
                .header()
                .headers
                .get("www-authenticate")
                .unwrap(),
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(
            Refusal::MethodNotAllowed
                .header()
                .headers
                .get("allow")
                .unwrap(),
            "GET, HEAD"
        );
    }

    const ERRORS: &[(ErrorType, ErrorSource, Option<u16>)] = &[
        (ErrorType::ConnectTimedout, ErrorSource::Upstream, Some(504)),
        (ErrorType::ReadTimedout, ErrorSource::Upstream, Some(504)),
        (ErrorType::ConnectRefused, ErrorSource::Upstream, Some(502)),
        (
            ErrorType::ConnectionClosed,
            ErrorSource::Upstream,
            Some(502),
        ),
        (
            ErrorType::InvalidHTTPHeader,
            ErrorSource::Upstream,
            Some(502),
        ),
        (ErrorType::ConnectionClosed, ErrorSource::Downstream, None),
        (
            ErrorType::InvalidHTTPHeader,
            ErrorSource::Downstream,
            Some(400),
        ),
        (ErrorType::InternalError, ErrorSource::Internal, Some(500)),
    ];

    #[test]
    fn proxy_errors_map_to_statuses() {
        for (etype, source, want) in ERRORS {
            let e = Error::create(etype.clone(), source.clone(), None, None);
            assert_eq!(
                Refusal::from_proxy_error(&e).map(|r| r.status()),
                *want,
                "{etype:?} from {source:?}"
            );
        }
    }
}
