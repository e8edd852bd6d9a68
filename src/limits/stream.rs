//! The client connection as Pingora's HTTP code sees it: the stream after
//! TLS, holding its place in the connection table, and failing reads with
//! `TimedOut` once a request header has taken longer than the deadline.
//! On a stream that cannot peek (TLS), the first bytes awaited before the
//! connection is handed on are read here and held for the first reader.
//!
//! An HTTP/1 request head that grows past the size limits is answered here,
//! in the read that crosses the limit: those bytes never reach Pingora, the
//! refusal is written and the connection closed ([`super::lingering`]).
//! The read then fails.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use prometheus::{IntCounter, IntCounterVec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::HeadLimits;
use super::lingering::Refusing;
use super::table::Permit;
use super::watch::HeaderWatch;

/// The most a stream that cannot peek is read of before it is handed on.
const FIRST_READ: usize = 4096;

pub struct Guarded {
    inner: Stream,
    /// Bytes read by `first_bytes` and not yet read from this stream.
    held: Option<Bytes>,
    watch: HeaderWatch,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    expired: bool,
    timeouts: IntCounter,
    refusals: IntCounterVec,
    /// A head passed a limit: its answer and the lingering close.
    refusing: Option<Box<Refusing>>,
    /// The TCP socket under `inner` when nothing (TLS) is between: a body
    /// file can then be sent into it (`sendfile`).
    socket: Option<RawFd>,
    _permit: Permit,
}

/// Counters a guarded stream moves.
#[derive(Clone)]
pub struct Counters {
    /// Request headers not complete in time.
    pub timeouts: IntCounter,
    /// Request heads refused for their size, by reason.
    pub refusals: IntCounterVec,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("watch", &self.watch)
            .field("expired", &self.expired)
            .field("held", &self.held.as_ref().map(Bytes::len))
            .field(
                "refusing",
                &self.refusing.as_ref().map(|r| (r.over, r.step)),
            )
            .finish()
    }
}

impl Guarded {
    /// Wraps an accepted stream; the first header's deadline starts now.
    /// HTTP/1 heads are held to `limits` (HTTP/2's header lists are held
    /// to them by the HTTP/2 layer).
    pub fn new(
        inner: Stream,
        permit: Permit,
        timeout: Duration,
        limits: HeadLimits,
        counters: Counters,
    ) -> Self {
        let watch = if matches!(inner.selected_alpn_proto(), Some(ALPN::H2)) {
            HeaderWatch::h2()
        } else {
            HeaderWatch::h1(limits)
        };
        Guarded {
            inner,
            held: None,
            watch,
            timeout,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            expired: false,
            timeouts: counters.timeouts,
            refusals: counters.refusals,
            refusing: None,
            socket: None,
            _permit: permit,
        }
    }

    /// Wraps an accepted plain TCP connection: as [`Guarded::new`], and
    /// files can be sent into its socket ([`Guarded::socket`]). `None`
    /// when the stream is not Pingora's TCP stream after all (no listener
    /// of Pingora's makes another for a TCP connection): it is closed.
    pub fn plain(
        inner: Stream,
        permit: Permit,
        timeout: Duration,
        limits: HeadLimits,
        counters: Counters,
    ) -> Option<Self> {
        let tcp = inner.get_ssl().is_none()
            && inner
                .get_socket_digest()
                .is_some_and(|d| d.peer_addr().is_some_and(|a| a.as_inet().is_some()));
        if !tcp {
            return Some(Guarded::new(inner, permit, timeout, limits, counters));
        }
        // `Stream` is a boxed trait object: Pingora's TCP stream is found
        // by taking it out of the box.
        let l4 = inner.into_any().downcast::<L4Stream>().ok()?;
        let socket = l4.as_raw_fd();
        let mut guarded = Guarded::new(l4, permit, timeout, limits, counters);
        guarded.socket = Some(socket);
        Some(guarded)
    }

    /// The connection's TCP socket, when nothing is between it and the
    /// HTTP bytes (no TLS). Bytes written into it directly must follow
    /// everything written through the stream: flush first.
    pub fn socket(&self) -> Option<BorrowedFd<'_>> {
        // SAFETY: the descriptor is the socket of `inner`, which this
        // stream owns: it stays open as long as `self` is borrowed.
        #[allow(unsafe_code)]
        self.socket.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Bytes of an answer were written into [`Guarded::socket`] directly.
    pub fn wrote_directly(&mut self) {
        self.watch.wrote();
    }

    /// Waits until the client has sent something (or closed): the bytes
    /// are read again by whoever reads the stream next. A stream that can
    /// peek is peeked; one that cannot (TLS) is read, and what came is held
    /// for the next read (a client that closed instead is an error). The
    /// wait is part of the first header's time: past the deadline it fails
    /// as a read would.
    pub async fn first_bytes(&mut self) -> io::Result<()> {
        let Guarded {
            inner,
            held,
            deadline,
            ..
        } = self;
        let wait = async {
            let mut first = [0u8; 1];
            if inner.try_peek(&mut first).await? {
                return Ok(());
            }
            let mut buf = vec![0u8; FIRST_READ];
            let n = std::future::poll_fn(|cx| {
                let mut read = ReadBuf::new(&mut buf);
                Pin::new(&mut *inner)
                    .poll_read(cx, &mut read)
                    .map_ok(|()| read.filled().len())
            })
            .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before sending a request",
                ));
            }
            buf.truncate(n);
            *held = Some(Bytes::from(buf));
            Ok(())
        };
        let Some(deadline) = deadline.as_mut() else {
            return wait.await;
        };
        tokio::select! {
            waited = wait => return waited,
            () = deadline.as_mut() => {}
        }
        self.expired = true;
        self.deadline = None;
        self.timeouts.inc();
        Err(Self::timed_out())
    }

    /// Puts `bytes` back in front of what the stream reads next: a head
    /// read by one reader (the hit lane) and left to another (Pingora's
    /// session). The head was measured as it was read the first time; read
    /// again before a response is written, it is not measured twice.
    pub fn hold(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.held = Some(match self.held.take() {
            Some(rest) => {
                let mut joined = Vec::with_capacity(bytes.len() + rest.len());
                joined.extend_from_slice(&bytes);
                joined.extend_from_slice(&rest);
                Bytes::from(joined)
            }
            None => bytes,
        });
    }

    fn timed_out() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "request header not complete within limits.header_timeout_ms",
        )
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(refusing) = this.refusing.as_mut() {
            return refusing.poll(&mut this.inner, cx);
        }
        if this.expired {
            return Poll::Ready(Err(Self::timed_out()));
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.expired = true;
            this.deadline = None;
            this.timeouts.inc();
            return Poll::Ready(Err(Self::timed_out()));
        }
        let before = buf.filled().len();
        let polled = match this.held.as_mut() {
            Some(held) => {
                let n = held.len().min(buf.remaining());
                buf.put_slice(&held.split_to(n));
                if held.is_empty() {
                    this.held = None;
                }
                Poll::Ready(Ok(()))
            }
            None => Pin::new(&mut this.inner).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = polled {
            let was_waiting = this.watch.waiting();
            let seen = this.watch.read(&buf.filled()[before..]);
            if let Some(over) = seen.over {
                // None of these bytes reach the reader: the head is
                // answered here.
                buf.set_filled(before);
                this.held = None;
                this.deadline = None;
                this.refusals.with_label_values(&[over.reason()]).inc();
                tracing::debug!(reason = over.reason(), "request head over the limits");
                let refusing = this
                    .refusing
                    .insert(Box::new(Refusing::new(over, this.watch.head_request())));
                return refusing.poll(&mut this.inner, cx);
            }
            if !this.watch.waiting() {
                this.deadline = None;
            } else if seen.began || !was_waiting {
                this.deadline = Some(Box::pin(tokio::time::sleep(this.timeout)));
            }
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.watch.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.watch.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        // A refused connection's sending side is closed already.
        if self.refusing.is_none() {
            self.inner.shutdown().await
        }
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    /// As Pingora's own streams peek: `buf` filled whole, or an error. With
    /// bytes held (a stream that cannot peek), more are read and held.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let Some(held) = self.held.take() else {
            return self.inner.try_peek(buf).await;
        };
        let mut bytes = Vec::from(held);
        let mut filled = Ok(());
        while bytes.len() < buf.len() {
            let mut more = [0u8; 1024];
            match self.inner.read(&mut more).await {
                Ok(0) => {
                    filled = Err(io::ErrorKind::UnexpectedEof.into());
                    break;
                }
                Ok(n) => bytes.extend_from_slice(&more[..n]),
                Err(e) => {
                    filled = Err(e);
                    break;
                }
            }
        }
        if filled.is_ok() {
            buf.copy_from_slice(&bytes[..buf.len()]);
        }
        self.held = (!bytes.is_empty()).then(|| Bytes::from(bytes));
        filled.map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::lingering::LINGER;
    use crate::limits::refuse;
    use crate::limits::table::ConnectionTable;
    use crate::limits::watch::Over;
    use prometheus::IntGauge;
    use tokio::io::{AsyncWriteExt, DuplexStream, duplex};

    const TIMEOUT: Duration = Duration::from_secs(10);

    const LIMITS: HeadLimits = HeadLimits {
        total: 4096,
        line: 1024,
    };

    /// A guarded stream that cannot peek (as a TLS one), and the client's end.
    fn guarded() -> (Guarded, DuplexStream, IntCounter) {
        let (g, client, counters) = guarded_with(LIMITS);
        (g, client, counters.timeouts)
    }

    fn guarded_with(limits: HeadLimits) -> (Guarded, DuplexStream, Counters) {
        let (server, client) = duplex(64 * 1024);
        let table = Arc::new(ConnectionTable::new(
            8,
            None,
            IntGauge::new("open", "open").unwrap(),
        ));
        let permit = table.admit(None).unwrap();
        let counters = Counters {
            timeouts: IntCounter::new("timeouts", "timeouts").unwrap(),
            refusals: IntCounterVec::new(
                prometheus::Opts::new("refusals", "refusals"),
                &["reason"],
            )
            .unwrap(),
        };
        let stream: Stream = Box::new(server);
        (
            Guarded::new(stream, permit, TIMEOUT, limits, counters.clone()),
            client,
            counters,
        )
    }

    async fn read_some(g: &mut Guarded, max: usize) -> Vec<u8> {
        let mut buf = vec![0u8; max];
        let n = g.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn first_bytes_of_a_stream_that_cannot_peek_are_read_again() {
        let (mut g, mut client, _) = guarded();
        let request = b"GET /v/a.mp4 HTTP/1.1\r\nHost: cdn\r\n\r\n";
        client.write_all(request).await.unwrap();
        g.first_bytes().await.unwrap();
        // Read back in small pieces, then what the client sends after.
        let mut got = Vec::new();
        while got.len() < request.len() {
            got.extend(read_some(&mut g, 5).await);
        }
        assert_eq!(got, request);
        client.write_all(b"more").await.unwrap();
        assert_eq!(read_some(&mut g, 64).await, b"more");
    }

    #[tokio::test]
    async fn a_peek_after_the_first_bytes_fills_its_buffer_and_consumes_nothing() {
        let (mut g, mut client, _) = guarded();
        client.write_all(b"PRI * HTTP/2.0").await.unwrap();
        g.first_bytes().await.unwrap();
        let rest = b"\r\n\r\nSM\r\n\r\nframes";
        let writer = tokio::spawn(async move {
            client.write_all(rest).await.unwrap();
            client
        });
        let mut preface = [0u8; 24];
        assert!(g.try_peek(&mut preface).await.unwrap());
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let _client = writer.await.unwrap();
        let mut got = Vec::new();
        while got.len() < 30 {
            got.extend(read_some(&mut g, 7).await);
        }
        assert_eq!(got, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nframes");
    }

    #[tokio::test]
    async fn a_client_that_closes_first_is_an_error() {
        let (mut g, client, timeouts) = guarded();
        drop(client);
        let e = g.first_bytes().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(timeouts.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_fails_the_wait_at_the_header_deadline() {
        let (mut g, _client, timeouts) = guarded();
        let started = tokio::time::Instant::now();
        let e = g.first_bytes().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
        assert_eq!(timeouts.get(), 1);
        // Reads fail the same way afterwards, counted once.
        let mut buf = [0u8; 8];
        assert_eq!(
            g.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(timeouts.get(), 1);
    }

    fn refused(counters: &Counters, reason: &str) -> u64 {
        counters.refusals.with_label_values(&[reason]).get()
    }

    #[tokio::test]
    async fn a_field_over_the_limit_is_answered_here_and_never_reaches_the_reader() {
        let (mut g, mut client, counters) = guarded_with(LIMITS);
        let start = b"GET /v/a.mp4 HTTP/1.1\r\nHost: cdn\r\n";
        client.write_all(start).await.unwrap();
        assert_eq!(read_some(&mut g, 64 * 1024).await, start);
        let mut cookie = b"Cookie: ".to_vec();
        cookie.resize(1500, b'c');
        client.write_all(&cookie).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let got = g.read(&mut buf).await;
            (got, g)
        });
        // The answer, then the end of the node's side.
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, refuse::http1(Over::Field, false));
        assert_eq!(refused(&counters, "field_too_large"), 1);
        // The reader waits while the client still sends (dropped), and
        // fails once it closes.
        client.write_all(b"more cookie").await.unwrap();
        assert!(!reader.is_finished());
        drop(client);
        let (got, mut g) = reader.await.unwrap();
        let e = got.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string().contains("limits.max_header_field_bytes"),
            "{e}"
        );
        // Reads fail the same way afterwards; nothing else is counted.
        let mut buf = [0u8; 8];
        assert!(g.read(&mut buf).await.is_err());
        assert_eq!(refused(&counters, "field_too_large"), 1);
        assert_eq!(counters.timeouts.get(), 0);
    }

    #[tokio::test]
    async fn a_head_request_line_and_a_whole_head_over_the_limits() {
        let cases: &[(&[u8], Over, bool)] = &[
            (b"HEAD /", Over::RequestLine, true),
            (b"GET /", Over::RequestLine, false),
        ];
        for (start, over, head) in cases {
            let (mut g, mut client, counters) = guarded_with(LIMITS);
            let mut line = start.to_vec();
            line.resize(1100, b'a');
            client.write_all(&line).await.unwrap();
            AsyncWriteExt::shutdown(&mut client).await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            assert!(g.read(&mut buf).await.is_err());
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            assert_eq!(answer, refuse::http1(*over, *head));
            assert_eq!(refused(&counters, over.reason()), 1);
        }
        // Many fields, each under the line limit, over the head limit.
        let (mut g, mut client, counters) = guarded_with(LIMITS);
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() <= 4096 {
            head.extend_from_slice(b"X-Field: 0123456789012345678901234567890123456789\r\n");
        }
        client.write_all(&head).await.unwrap();
        AsyncWriteExt::shutdown(&mut client).await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1000];
        let e = loop {
            match g.read(&mut buf).await {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert!(e.to_string().contains("limits.max_header_bytes"), "{e}");
        assert!(got.len() <= 4096, "{} bytes reached the reader", got.len());
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, refuse::http1(Over::Head, false));
        assert_eq!(refused(&counters, "header_too_large"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_closes_is_let_go_after_the_linger() {
        let (mut g, mut client, _) = guarded_with(LIMITS);
        let mut line = b"GET /".to_vec();
        line.resize(1100, b'a');
        client.write_all(&line).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        assert!(g.read(&mut buf).await.is_err());
        assert_eq!(started.elapsed(), LINGER);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, refuse::http1(Over::RequestLine, false));
    }
}
