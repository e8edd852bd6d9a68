//! Why a request to the origin failed, as metrics (`kind`) and the access
//! log (`origin_error`) name it.

use pingora::{Error, ErrorType};

/// An origin failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OriginError {
    /// No address for the origin resolved yet.
    Dns,
    ConnectTimeout,
    /// A read or write to the origin timed out.
    Timeout,
    /// The connection could not be made.
    Connect,
    Tls,
    /// The origin closed or reset the connection.
    Reset,
    /// The origin's answer was not valid HTTP, or ended early.
    Protocol,
    /// S3 redirected us (a 3xx: wrong region or endpoint).
    S3Redirect,
    /// S3 refused our credentials or signature (401, 403).
    S3Denied,
    /// S3 failed (5xx).
    S3ServerError,
    /// S3 refused the request otherwise (4xx other than 404, 412, 416).
    S3Rejected,
}

impl OriginError {
    pub const fn as_str(self) -> &'static str {
        match self {
            OriginError::Dns => "dns",
            OriginError::ConnectTimeout => "connect_timeout",
            OriginError::Timeout => "timeout",
            OriginError::Connect => "connect",
            OriginError::Tls => "tls",
            OriginError::Reset => "reset",
            OriginError::Protocol => "protocol",
            OriginError::S3Redirect => "s3_redirect",
            OriginError::S3Denied => "s3_denied",
            OriginError::S3ServerError => "s3_server_error",
            OriginError::S3Rejected => "s3_rejected",
        }
    }

    /// The kind of a Pingora error met on the way to or from the origin.
    pub fn of_proxy_error(e: &Error) -> OriginError {
        match e.etype() {
            ErrorType::ConnectTimedout => OriginError::ConnectTimeout,
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => OriginError::Timeout,
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::BindError
            | ErrorType::SocketError => OriginError::Connect,
            ErrorType::TLSHandshakeFailure
            | ErrorType::TLSHandshakeTimedout
            | ErrorType::InvalidCert
            | ErrorType::HandshakeError => OriginError::Tls,
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
                OriginError::Reset
            }
            _ => OriginError::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::ErrorSource;

    const KINDS: &[(ErrorType, &str)] = &[
        (ErrorType::ConnectTimedout, "connect_timeout"),
        (ErrorType::ReadTimedout, "timeout"),
        (ErrorType::WriteTimedout, "timeout"),
        (ErrorType::ConnectRefused, "connect"),
        (ErrorType::TLSHandshakeFailure, "tls"),
        (ErrorType::ConnectionClosed, "reset"),
        (ErrorType::InvalidHTTPHeader, "protocol"),
    ];

    #[test]
    fn proxy_errors_have_kinds() {
        for (etype, want) in KINDS {
            let e = Error::create(etype.clone(), ErrorSource::Upstream, None, None);
            assert_eq!(OriginError::of_proxy_error(&e).as_str(), *want, "{etype:?}");
        }
    }
}
