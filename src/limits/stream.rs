//! The client connection as Pingora's HTTP code sees it: the stream after
//! TLS, holding its place in the connection table, and failing reads with
//! `TimedOut` once a request header has taken longer than the deadline.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::table::Permit;
use super::watch::HeaderWatch;

pub struct Guarded {
    inner: Stream,
    watch: HeaderWatch,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    expired: bool,
    timeouts: IntCounter,
    _permit: Permit,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("watch", &self.watch)
            .field("expired", &self.expired)
            .finish()
    }
}

impl Guarded {
    /// Wraps an accepted stream; the first header's deadline starts now.
    pub fn new(inner: Stream, permit: Permit, timeout: Duration, timeouts: IntCounter) -> Self {
        let watch = if matches!(inner.selected_alpn_proto(), Some(ALPN::H2)) {
            HeaderWatch::h2()
        } else {
            HeaderWatch::h1()
        };
        Guarded {
            inner,
            watch,
            timeout,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            expired: false,
            timeouts,
            _permit: permit,
        }
    }

    /// Waits until the client has sent something (or closed), consuming
    /// nothing: the bytes are read again by whoever reads the stream next.
    /// The wait is part of the first header's time: past the deadline it
    /// fails as a read would. Returns at once on a stream that cannot peek
    /// (TLS).
    pub async fn first_bytes(&mut self) -> io::Result<()> {
        let mut first = [0u8; 1];
        let Guarded {
            inner, deadline, ..
        } = self;
        let Some(deadline) = deadline.as_mut() else {
            return inner.try_peek(&mut first).await.map(|_| ());
        };
        tokio::select! {
            peeked = inner.try_peek(&mut first) => return peeked.map(|_| ()),
            () = deadline.as_mut() => {}
        }
        self.expired = true;
        self.deadline = None;
        self.timeouts.inc();
        Err(Self::timed_out())
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
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let was_waiting = this.watch.waiting();
            let began = this.watch.read(&buf.filled()[before..]);
            if !this.watch.waiting() {
                this.deadline = None;
            } else if began || !was_waiting {
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
        self.inner.shutdown().await
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
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
