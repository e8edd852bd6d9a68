//! The access log entry of a finished request: what the session says (the
//! answer sent, the bytes, the client's socket) together with what the
//! request path learnt ([`Finished`]).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use pingora::prelude::*;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;

use super::{AccessLog, Client, Entry};
use crate::auth::AuthOutcome;
use crate::auth::settings::TokenSource;
use crate::cache::status::CacheStatus;
use crate::origin::OriginError;

/// What the request path learnt about a request, for its log line.
pub struct Finished<'a> {
    /// The status sent (0 when nothing was, 499 when the client went away
    /// first).
    pub status: u16,
    pub bytes: u64,
    pub elapsed: Duration,
    pub cache: CacheStatus,
    pub origin_status: Option<u16>,
    pub origin_duration: Option<Duration>,
    pub origin_error: Option<OriginError>,
    pub s3_code: Option<&'a str>,
    pub auth: AuthOutcome,
    pub sub: Option<&'a str>,
    /// The client as the trusted-proxy chain names it, when it does.
    pub client: Option<IpAddr>,
}

impl AccessLog {
    /// Writes the line of a finished request. The target is redacted as the
    /// line is written: no copy of it is made.
    pub fn write_request(
        &self,
        session: &Session,
        token_sources: &[TokenSource],
        finished: &Finished<'_>,
    ) {
        self.write_answered(
            session.req_header(),
            session.client_addr(),
            token_sources,
            finished,
        );
    }

    /// [`Self::write_request`] for a request answered outside a Pingora
    /// session: its header and the connection's peer address.
    pub fn write_answered(
        &self,
        req: &RequestHeader,
        socket: Option<&PeerAddr>,
        token_sources: &[TokenSource],
        finished: &Finished<'_>,
    ) {
        // Validating is quicker than the lossy decode, which is only for
        // targets that are not UTF-8.
        let raw = req.raw_path();
        let target = std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .unwrap_or_else(|_| String::from_utf8_lossy(raw));
        // The socket address, unless a trusted proxy named another client.
        let named;
        let client = match (finished.client, socket.and_then(|a| a.as_inet())) {
            (Some(ip), Some(peer)) if ip != peer.ip().to_canonical() => {
                named = ip;
                Some(Client::Shown(&named))
            }
            (_, Some(SocketAddr::V4(peer))) => Some(Client::V4(*peer)),
            _ => socket.map(|a| Client::Shown(a)),
        };
        self.write(&Entry {
            time: SystemTime::now(),
            client,
            method: req.method.as_str(),
            target: &target,
            token_sources,
            status: finished.status,
            bytes: finished.bytes,
            duration_ms: finished.elapsed.as_secs_f64() * 1000.0,
            cache: finished.cache.as_str(),
            origin_status: finished.origin_status,
            origin_ms: finished.origin_duration.map(|d| d.as_secs_f64() * 1000.0),
            origin_error: finished.origin_error.map(OriginError::as_str),
            s3_code: finished.s3_code,
            auth: finished.auth.as_str(),
            sub: finished.sub,
        });
    }
}
