//! Every error answer the node gives a client, and its HTTP form, in one
//! place. Bodies are short fixed phrases: no internal text, no origin error,
//! no token detail ever reaches a client.

use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType};

use crate::auth::Reject;
use crate::origin::OriginError;
use crate::request::method::MethodSet;
use crate::request::path::PathError;

/// Why a request is answered with an error instead of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A method neither served nor passed on: `Allow` names those that are.
    MethodNotAllowed(MethodSet),
    /// The request is not acceptable as sent.
    BadRequest(BadRequest),
    /// No valid token.
    Unauthorized(Reject),
    /// A valid token that does not open this request (out of scope, bound
    /// to another address).
    Forbidden(Reject),
    /// A CORS preflight from an origin, or for a method or request fields,
    /// that may not read the node's answers.
    PreflightRefused,
    /// The origin has no such object (or the path names no object).
    NotFound,
    /// A request on the peer listener without a valid hop marker.
    HopForbidden(crate::cluster::marker::Invalid),
    /// The request has passed more of the fleet's nodes than a clean one
    /// does (RFC 8586 `CDN-Loop`).
    Loop,
    /// The origin refused us or failed.
    BadGateway(OriginError),
    /// The origin did not answer in time.
    GatewayTimeout,
    /// A bug or an unexpected local failure.
    Internal,
}

/// Why a request is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The path is not one the node accepts.
    Path(PathError),
    /// The raw target is not UTF-8.
    PathEncoding,
    /// The query does not parse.
    Query,
    /// An HTTP/1.1 request without its `Host`, or a `Host` that is not
    /// `host[:port]` (RFC 9112 3.2).
    Host,
    /// The token gate refused the request as malformed (several tokens
    /// that disagree).
    Token(Reject),
    /// The client broke HTTP.
    Protocol,
}

impl BadRequest {
    /// Metric and log label.
    pub fn as_str(self) -> &'static str {
        match self {
            BadRequest::Path(e) => e.reason(),
            BadRequest::PathEncoding => "path_encoding",
            BadRequest::Query => "query",
            BadRequest::Host => "host",
            BadRequest::Token(reject) => reject.reason(),
            BadRequest::Protocol => "protocol",
        }
    }
}

/// A refusal by the token gate: 400, 401 or 403 as the reason says.
impl From<Reject> for Refusal {
    fn from(reject: Reject) -> Refusal {
        match reject {
            Reject::Conflict => Refusal::BadRequest(BadRequest::Token(reject)),
            r if r.is_forbidden() => Refusal::Forbidden(r),
            r => Refusal::Unauthorized(r),
        }
    }
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::MethodNotAllowed(_) => 405,
            Refusal::BadRequest(_) => 400,
            Refusal::Unauthorized(_) => 401,
            Refusal::Forbidden(_) | Refusal::PreflightRefused | Refusal::HopForbidden(_) => 403,
            Refusal::NotFound => 404,
            Refusal::Loop => 508,
            Refusal::BadGateway(_) => 502,
            Refusal::GatewayTimeout => 504,
            Refusal::Internal => 500,
        }
    }

    pub fn body(&self) -> &'static str {
        match self {
            Refusal::MethodNotAllowed(_) => "method not allowed\n",
            Refusal::BadRequest(_) => "bad request\n",
            Refusal::Unauthorized(_) => "a valid token is required\n",
            Refusal::Forbidden(_) | Refusal::PreflightRefused | Refusal::HopForbidden(_) => {
                "forbidden\n"
            }
            Refusal::NotFound => "not found\n",
            Refusal::Loop => "loop detected\n",
            Refusal::BadGateway(_) => "bad gateway\n",
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
            Refusal::Unauthorized(_) => {
                let _ = h.insert_header("www-authenticate", "Bearer error=\"invalid_token\"");
            }
            Refusal::MethodNotAllowed(allowed) => {
                let _ = h.insert_header("allow", allowed.to_string());
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
                _ => Refusal::BadGateway(OriginError::of_proxy_error(e)),
            }),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
                _ => Some(Refusal::BadRequest(BadRequest::Protocol)),
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ErrorType::HTTPStatus(code) if *code == 504 => Some(Refusal::GatewayTimeout),
                ErrorType::HTTPStatus(code) if (500..600).contains(code) => {
                    Some(Refusal::BadGateway(OriginError::Protocol))
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

/// The token gate's reject behind a refusal, if the gate refused.
impl Refusal {
    pub fn reject(&self) -> Option<Reject> {
        match self {
            Refusal::Unauthorized(r)
            | Refusal::Forbidden(r)
            | Refusal::BadRequest(BadRequest::Token(r)) => Some(*r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_plain_body_and_no_store() {
        let all = [
            Refusal::MethodNotAllowed(MethodSet::READ),
            Refusal::BadRequest(BadRequest::Path(PathError::DotSegment)),
            Refusal::Unauthorized(Reject::Expired),
            Refusal::Forbidden(Reject::OutOfScope),
            Refusal::PreflightRefused,
            Refusal::NotFound,
            Refusal::BadGateway(OriginError::S3Denied),
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
            Refusal::Unauthorized(Reject::Missing)
                .header()
                .headers
                .get("www-authenticate")
                .unwrap(),
            "Bearer error=\"invalid_token\""
        );
        for (allowed, want) in [
            (MethodSet::READ, "GET, HEAD"),
            (
                MethodSet::GENERAL,
                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
            ),
        ] {
            let h = Refusal::MethodNotAllowed(allowed).header();
            assert_eq!(h.headers.get("allow").unwrap(), want);
        }
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

    #[test]
    fn gate_rejects_map_to_400_401_403() {
        let cases = [
            (Reject::Missing, 401),
            (Reject::Expired, 401),
            (Reject::OutOfScope, 403),
            (Reject::AddressMismatch, 403),
            (Reject::Conflict, 400),
        ];
        for (reject, want) in cases {
            let refusal = Refusal::from(reject);
            assert_eq!(refusal.status(), want, "{reject:?}");
            assert_eq!(refusal.reject(), Some(reject));
        }
        assert_eq!(Refusal::NotFound.reject(), None);
        assert_eq!(Refusal::BadRequest(BadRequest::Query).reject(), None);
        assert_eq!(BadRequest::Token(Reject::Conflict).as_str(), "conflict");
        assert_eq!(
            BadRequest::Path(PathError::DotSegment).as_str(),
            "path_dot_segment"
        );
    }
}
