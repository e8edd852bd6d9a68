//! Limits on client connections, applied around Pingora's HTTP application:
//! how many connections may be open at once (in all, and per client IP,
//! TLS handshakes included), a deadline for the TLS handshake, the size of
//! a request head (in all and per line), and a total deadline for each
//! request header. Pingora 0.9.1's own read timeout restarts on every read,
//! so a client sending one header byte at a time could otherwise hold a
//! connection for as long as it likes; its own head limit is 1 MiB.

mod app;
mod h2;
mod lingering;
mod refuse;
mod spread;
mod stream;
mod table;
mod watch;

use std::time::Duration;

pub use app::LimitedApp;
pub use stream::Guarded;

/// How long an HTTP/2 connection with no request in flight is kept: the
/// same as Pingora's HTTP/1 keep-alive (60 s).
pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The validated `limits` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: Option<usize>,
    pub head: HeadLimits,
    pub tls_handshake_timeout: Duration,
}

/// The sizes a request head may reach: in all (request line and fields,
/// line ends included), and per line (the request line or one field line,
/// without its line end). `line <= total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub total: usize,
    pub line: usize,
}

/// Room for the fields a hop adds to the client's: the marker, the fleet's
/// `CDN-Loop` entry, `Host`.
const HOP_FIELDS: usize = 1024;

impl HeadLimits {
    /// The limits of the peer listener. A hop carries what the edge let in
    /// under these limits, with its target in canonical form (any byte but
    /// the unreserved ones written `%XX`: up to three times as long) and
    /// the hop's own fields: a request one node accepted is never refused
    /// by the node that owns its key.
    pub fn for_hops(self) -> HeadLimits {
        HeadLimits {
            total: self.total + 2 * self.line + HOP_FIELDS,
            line: 3 * self.line,
        }
    }
}
