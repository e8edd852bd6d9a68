//! The hit lane. On HTTP/2 ([`h2`]) each stream's request is offered to
//! it before the proxy's phases. On HTTP/1 a client connection's requests
//! are read here first, and the plainest ones (a GET or HEAD) are answered
//! here, without a Pingora session, when memory or the page cache holds
//! the object or, in a PoP, when another node owns it ([`forward`]). Every
//! other request is handed to Pingora's HTTP/1 session with the bytes
//! already read put back in front of the stream; the connection comes back after Pingora's answer, and
//! the next request is read here again.
//!
//! Why: a memory hit is the node's most frequent answer and its cheapest to
//! make, and on Pingora's path most of its CPU time is the path itself (a
//! session and its buffers per request, the proxy's phases, a boxed
//! per-request future moved on every poll), not the answer. The lane makes
//! the same answer ([`crate::proxy::lane`]) in one read, one parse and one
//! write.
//!
//! What stays as it is: the connection's limits and header deadline (the
//! stream is the same [`Guarded`] stream Pingora reads), the answers'
//! fields (Pingora's `Date` and `Connection` added as its HTTP/1 session
//! adds them), the counting and the log line, and the graceful stop: an
//! idle connection is closed when the service shuts down, as Pingora closes
//! one between requests, and an answer given during the shutdown says
//! `Connection: close`.

mod direct;
pub mod forward;
mod h2;
mod head;

pub use h2::Offered;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, DATE};
use pingora::apps::{HttpPersistentSettings, HttpServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, GetSocketDigest, Shutdown, Ssl, Stream};
use pingora::server::ShutdownWatch;
use pingora_core::protocols::http::date::get_cached_date;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::cache::store::put_status_line;
use crate::lane::forward::Relay;
use crate::limits::Guarded;
use crate::listeners::WRITE_BUFFER;
use crate::proxy::handed;
use crate::proxy::lane::{Answer, Body, Form, Head, Outcome};
use crate::proxy::{Edge, Sent};
use head::Parsed;

/// How long a kept-alive connection may wait for its next request: the
/// keep-alive timeout Pingora gives a new HTTP/1 session.
pub const IDLE: Duration = Duration::from_secs(60);

/// Room made in the read buffer before each read.
const READ_SIZE: usize = 4096;

/// The lane of one proxy's client listeners.
pub struct Lane {
    edge: Edge,
}

impl Lane {
    /// The lane of `edge`, when it answers anything: a client listener of a
    /// node with a cache.
    pub fn of(edge: Edge) -> Option<Lane> {
        edge.lane_serves().then_some(Lane { edge })
    }

    /// Whether a connection is the lane's: HTTP/1 (no HTTP/2 or other
    /// protocol agreed in TLS).
    pub fn takes(stream: &Guarded) -> bool {
        matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1))
    }

    /// Serves an HTTP/1 connection until it closes: requests the lane
    /// answers here, the others through `app` (Pingora's session).
    pub async fn serve<A>(
        &self,
        app: &Arc<A>,
        stream: Guarded,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream>
    where
        A: HttpServerApp + Send + Sync + 'static,
    {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned());
        let peer_ip = peer.as_ref().and_then(|a| a.as_inet()).map(|a| a.ip());
        let mut stream = Box::new(stream);
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        // What Pingora's last session passes to the next one (keep-alive).
        let mut settings: Option<HttpPersistentSettings> = None;
        // One timer and one shutdown waiter for the connection's idle
        // waits, moved on rather than made anew for each.
        let mut idle = Idle {
            deadline: std::pin::pin!(tokio::time::sleep(IDLE)),
            down: std::pin::pin!(shut_down(shutdown.clone())),
        };
        let mut first = true;
        // Plain TCP: a body file can be sent into the socket.
        let files = stream.socket().is_some();
        loop {
            let parsed = read_head(&mut stream, &mut buf, first, &mut idle).await?;
            first = false;
            let head = match parsed {
                Parsed::Lane(head) => Some(head),
                Parsed::Pingora | Parsed::Partial => None,
            };
            let outcome = match &head {
                Some(head) => {
                    self.edge
                        .lane_answer(&head.req, peer_ip, Form::Http1, files)
                        .await
                }
                None => Outcome::Pass,
            };
            let handed = match (head, outcome) {
                (Some(head), Outcome::Answer(answer)) => {
                    let keep = !head.close && !*shutdown.borrow();
                    let Answer {
                        head: out,
                        body,
                        mut ctx,
                    } = answer;
                    let status = out.status();
                    let bodiless = head.req.method == http::Method::HEAD;
                    let bytes = if bodiless { 0 } else { body.len() };
                    // Counted before it is sent, as the cache lookup is.
                    self.edge.metrics.ops.lane_answers.inc();
                    if matches!(body, Body::File(_)) && !bodiless {
                        self.edge.metrics.ops.file_hits.inc();
                    }
                    let edge = &self.edge;
                    let tap = &mut |chunk: Option<&Bytes>, end| edge.relayed(&mut ctx, chunk, end);
                    let written = write(&mut stream, out, body, bodiless, keep, tap).await;
                    let sent = Sent { status, bytes };
                    self.edge.finish(&head.req, peer.as_ref(), sent, &ctx);
                    buf.clear();
                    if let Err(e) = written {
                        tracing::debug!(error = %e, "a hit lane answer was not sent");
                        return None;
                    }
                    if !keep {
                        Shutdown::shutdown(&mut *stream).await;
                        return None;
                    }
                    continue;
                }
                (_, Outcome::Handed(admitted)) => Some(admitted),
                (_, Outcome::Pass | Outcome::Answer(_)) => None,
            };
            // Pingora's session reads the head again, from the start.
            stream.hold(buf.split().freeze());
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(kept) => kept.apply_to_session(&mut session),
                None => session.set_keepalive(Some(IDLE.as_secs())),
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            let reused = match handed {
                Some(admitted) => {
                    handed::with(admitted, app.process_new_http(session, shutdown)).await?
                }
                None => app.process_new_http(session, shutdown).await?,
            };
            let (back, kept) = reused.consume();
            settings = kept;
            stream = match back.into_any().downcast::<Guarded>() {
                Ok(stream) => stream,
                Err(_) => {
                    tracing::error!("a connection came back from Pingora as another stream");
                    return None;
                }
            };
        }
    }
}

/// What ends a connection's wait for its next request.
struct Idle<'a, D> {
    /// [`IDLE`] after the wait began. Moved later for each wait: a timer
    /// moved later is not taken out of tokio's timer wheel.
    deadline: Pin<&'a mut Sleep>,
    /// The service shuts down.
    down: Pin<&'a mut D>,
}

async fn shut_down(mut shutdown: ShutdownWatch) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        // The service is gone: nothing will shut it down.
        std::future::pending::<()>().await;
    }
}

/// Reads until `buf` holds a whole head (or what Pingora must read);
/// `None` when the connection closed, failed, stayed idle past [`IDLE`],
/// or the service shut down while it was idle. The first request's bytes
/// have arrived already ([`Guarded::first_bytes`]).
async fn read_head<D: Future<Output = ()>>(
    stream: &mut Guarded,
    buf: &mut BytesMut,
    first: bool,
    idle: &mut Idle<'_, D>,
) -> Option<Parsed> {
    loop {
        if !buf.is_empty() {
            match head::parse(buf) {
                Parsed::Partial => {}
                parsed => return Some(parsed),
            }
        }
        buf.reserve(READ_SIZE);
        let read = if buf.is_empty() && !first {
            idle.deadline.as_mut().reset(Instant::now() + IDLE);
            tokio::select! {
                biased;
                read = stream.read_buf(buf) => read,
                () = idle.down.as_mut() => return None,
                () = idle.deadline.as_mut() => return None,
            }
        } else {
            stream.read_buf(buf).await
        };
        match read {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading a request head");
                return None;
            }
        }
    }
}

/// Writes an answer as Pingora's HTTP/1 session writes it: the header
/// with its `Date` and `Connection` fields, then the body (none for a
/// HEAD), sent together; a body file is sent with `sendfile`, an owner's
/// body relayed as it comes, each chunk shown to `tap` first.
async fn write(
    stream: &mut Guarded,
    head: Head,
    body: Body,
    bodiless: bool,
    keep: bool,
    tap: &mut (dyn FnMut(Option<&Bytes>, bool) + Send),
) -> io::Result<()> {
    let wire = head_bytes(head, keep)?;
    let body = match body {
        Body::Relay(owner) => return relay(stream, &wire, owner, bodiless, tap).await,
        Body::File(file) if !bodiless => return direct::send_file(stream, &wire, &file).await,
        Body::Bytes(bytes) if !bodiless => bytes,
        Body::Bytes(_) | Body::File(_) => Bytes::new(),
    };
    let bufs = &mut [io::IoSlice::new(&wire), io::IoSlice::new(&body)];
    put(stream, bufs).await?;
    stream.flush().await
}

/// Writes `bufs`, in order after what the stream holds. What the stream
/// would copy into its write buffer (less than [`WRITE_BUFFER`] in all)
/// goes into the plain-TCP socket directly instead; the rest, and
/// everything under TLS, through the stream (which writes a large answer
/// past its buffer without copying it). The caller flushes.
async fn put(stream: &mut Guarded, bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    let len: usize = bufs.iter().map(|b| b.len()).sum();
    if len < WRITE_BUFFER && stream.socket().is_some() {
        return direct::send_bytes(stream, bufs).await;
    }
    write_all_vectored(stream, bufs).await
}

/// Writes `wire` (an answer's head) and the owner's body as it comes,
/// each chunk shown to `tap` first (a copy, the byte count); `bodiless`:
/// the client asked with HEAD, the head alone is written. A client that
/// takes nothing for [`direct::SEND_TIMEOUT`] is dropped.
async fn relay(
    stream: &mut Guarded,
    wire: &[u8],
    mut owner: Relay,
    bodiless: bool,
    tap: &mut (dyn FnMut(Option<&Bytes>, bool) + Send),
) -> io::Result<()> {
    let timeout = direct::SEND_TIMEOUT;
    let first = owner.next().await?;
    tap(first.as_ref(), owner.len() == 0);
    let body = match &first {
        Some(first) if !bodiless => &first[..],
        _ => &[],
    };
    let mut bufs = [io::IoSlice::new(wire), io::IoSlice::new(body)];
    tokio::time::timeout(timeout, put(stream, &mut bufs))
        .await
        .map_err(|_| direct::timed_out())??;
    while let Some(chunk) = owner.next().await? {
        tap(Some(&chunk), owner.len() == 0);
        if !bodiless {
            let mut bufs = [io::IoSlice::new(&chunk)];
            tokio::time::timeout(timeout, put(stream, &mut bufs))
                .await
                .map_err(|_| direct::timed_out())??;
        }
    }
    stream.flush().await
}

/// An answer's head as Pingora's HTTP/1 session writes it, with its `Date`
/// and `Connection` fields.
fn head_bytes(head: Head, keep: bool) -> io::Result<BytesMut> {
    let connection = if keep { "keep-alive" } else { "close" };
    let date = get_cached_date();
    let mut wire = BytesMut::with_capacity(512);
    match head {
        Head::Kept {
            wire: kept,
            age,
            rewritten,
            ..
        } => {
            kept.write(&mut wire, age, date.as_bytes(), connection, rewritten);
        }
        Head::Fields(mut header) => {
            let invalid =
                |e: Box<pingora::Error>| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
            header.insert_header(DATE, date).map_err(invalid)?;
            header
                .insert_header(CONNECTION, connection)
                .map_err(invalid)?;
            put_status_line(&mut wire, &header);
            header.header_to_h1_wire(&mut wire);
            wire.put_slice(b"\r\n");
        }
    }
    Ok(wire)
}

/// Writes every slice of `bufs` in as few writes as the stream takes: the
/// header and a body larger than Pingora's write buffer go out in one
/// `writev`, not as a flushed header and then the body.
async fn write_all_vectored(
    stream: &mut Guarded,
    mut bufs: &mut [io::IoSlice<'_>],
) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = stream.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
