//! Answers written straight into the connection's TCP socket, past
//! Pingora's write buffer (plain HTTP/1 only; TLS writes records).
//!
//! - [`send_file`]: a disk hit's head with `send(MSG_MORE)` (held by the
//!   kernel to go out with the first body bytes), then the body with
//!   `sendfile` from the page cache. The process never reads the body:
//!   what Pingora's hit path does with a read into a buffer and a write out
//!   of it, the kernel does without either copy (nginx's `sendfile on`).
//! - [`send_bytes`]: an answer held in memory, head and body, with one
//!   `sendmsg` of both. Through the stream, an answer smaller than its
//!   write buffer ([`crate::listeners::WRITE_BUFFER`]) would be copied
//!   into that buffer first and sent from there: one copy of every byte
//!   more.
//!
//! The socket is non-blocking and already registered with tokio by
//! Pingora's stream, which does not lend its readiness out. A send that
//! finds the socket's buffer full waits on a duplicate of the descriptor,
//! registered for writability only then and dropped with the answer: an
//! answer that fits the buffer costs no registration.
//!
//! A client that takes no byte for [`SEND_TIMEOUT`] is dropped, as nginx's
//! `send_timeout` drops it.

use std::io;
use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::AsyncWriteExt;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::cache::store::FileBody;
use crate::limits::Guarded;

/// How long a send may wait for the client to take bytes.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The most one `sendfile` is asked to move (the kernel's own bound).
const MAX_SEND: usize = 0x7fff_f000;

/// The most slices one `sendmsg` is given (Linux's `UIO_MAXIOV`).
pub const MAX_SLICES: usize = 1024;

/// The error of a send that waited [`SEND_TIMEOUT`] for the client.
pub fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took nothing within the send timeout",
    )
}

/// Writes `head`, then the `body`'s bytes, into `stream`'s socket. The
/// stream must have one ([`Guarded::socket`]).
pub async fn send_file(stream: &mut Guarded, head: &[u8], body: &FileBody) -> io::Result<()> {
    let socket = socket_of(stream).await?;
    let mut writable = Writable(None);
    let mut sent = 0;
    while sent < head.len() {
        let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
        let rest = &head[sent..];
        let n = writable
            .retry(socket, || rustix::net::send(socket, rest, flags))
            .await?;
        sent += n;
    }
    let mut offset = body.offset;
    let end = body.offset.saturating_add(body.len);
    while offset < end {
        let count = usize::try_from(end - offset).map_or(MAX_SEND, |n| n.min(MAX_SEND));
        let file = &body.file;
        let moved = writable
            .retry(socket, || {
                rustix::fs::sendfile(socket, file, Some(&mut offset), count)
            })
            .await?;
        if moved == 0 {
            // The file is shorter than its object: the client is sent less
            // than the `Content-Length` it was promised, and the
            // connection is closed by the caller.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the body file ended before the object's length",
            ));
        }
        // A fast reader on a large body: other connections of this thread
        // get their turn.
        tokio::task::consume_budget().await;
    }
    stream.wrote_directly();
    Ok(())
}

/// Writes every byte of `bufs`, in order, into `stream`'s socket: one
/// `sendmsg` of all the slices (at most [`MAX_SLICES`] at a time), again
/// from where the kernel stopped when the socket's buffer was full. The
/// stream must have a socket ([`Guarded::socket`]).
pub async fn send_bytes(stream: &mut Guarded, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    let socket = socket_of(stream).await?;
    send_slices(socket, &mut Writable(None), bufs).await?;
    stream.wrote_directly();
    Ok(())
}

/// [`send_bytes`] into `socket`, waiting with `writable`.
async fn send_slices(
    socket: BorrowedFd<'_>,
    writable: &mut Writable,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !bufs.is_empty() {
        let now = &bufs[..bufs.len().min(MAX_SLICES)];
        let n = writable
            .retry(socket, || {
                let mut control = SendAncillaryBuffer::default();
                rustix::net::sendmsg(socket, now, &mut control, SendFlags::NOSIGNAL)
            })
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
        if !bufs.is_empty() {
            tokio::task::consume_budget().await;
        }
    }
    Ok(())
}

/// `stream`'s socket, once what the stream's own buffer holds has gone
/// out first.
async fn socket_of(stream: &mut Guarded) -> io::Result<BorrowedFd<'_>> {
    stream.flush().await?;
    stream.socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "no socket to write into directly (TLS)",
        )
    })
}

/// The socket's writability, followed only once a send has found its
/// buffer full.
struct Writable(Option<AsyncFd<OwnedFd>>);

impl Writable {
    /// `op`'s result once it does not find the socket full; waits for
    /// writability in between, at most [`SEND_TIMEOUT`] each time.
    async fn retry<T>(
        &mut self,
        socket: BorrowedFd<'_>,
        mut op: impl FnMut() -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let fd = match &self.0 {
            Some(fd) => fd,
            None => {
                let dup = socket.try_clone_to_owned()?;
                // SAFETY: the `OwnedFd` is the duplicate's one owner, moved
                // into the `AsyncFd`: it stays open, and the same, until
                // the `AsyncFd` is dropped.
                #[allow(unsafe_code)]
                let registered =
                    unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) };
                self.0.insert(registered?)
            }
        };
        loop {
            let mut ready = tokio::time::timeout(SEND_TIMEOUT, fd.writable())
                .await
                .map_err(|_| timed_out())??;
            // A send that finds the buffer full again clears the
            // readiness, and the wait goes on.
            match ready.try_io(|_| {
                loop {
                    match op() {
                        Err(Errno::INTR) => continue,
                        other => return other.map_err(io::Error::from),
                    }
                }
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The answers through the real node are in `tests/file_hits.rs`;
    //! here, the sends into a socket that fills.
    use super::*;
    use std::os::fd::AsFd;
    use tokio::io::AsyncReadExt;

    /// A loopback connection: the server's end, with a 4 KiB send buffer
    /// that the sends fill many times over, and the client reading every
    /// byte until the server closes.
    async fn small_buffered() -> (tokio::net::TcpStream, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).await.unwrap();
            all
        });
        let (server, _) = listener.accept().await.unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(server.as_fd(), 4096).unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn a_full_socket_is_waited_on_until_the_reader_drains_it() {
        let (server, client) = small_buffered().await;
        let total = 4 << 20;
        let chunk = vec![1u8; 64 * 1024];
        let mut writable = Writable(None);
        let mut sent = 0;
        let mut waited = false;
        while sent < total {
            let socket = server.as_fd();
            let n = writable
                .retry(socket, || {
                    rustix::net::send(socket, &chunk, SendFlags::NOSIGNAL)
                })
                .await
                .unwrap();
            waited |= writable.0.is_some();
            sent += n;
        }
        drop(writable);
        drop(server);
        assert!(waited, "the socket never filled: nothing was waited on");
        assert_eq!(client.await.unwrap().len(), sent);
    }

    /// More slices than one `sendmsg` takes, of every size, into a socket
    /// that fills many times: every byte arrives once, in order, after
    /// partial sends that stop inside a slice.
    #[tokio::test]
    async fn slices_go_out_whole_and_in_order_through_a_full_socket() {
        let (server, client) = small_buffered().await;
        let pieces: Vec<Vec<u8>> = (0..3 * MAX_SLICES)
            .map(|i| (0..i % 1500).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        let mut bufs: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let mut writable = Writable(None);
        send_slices(server.as_fd(), &mut writable, &mut bufs)
            .await
            .unwrap();
        assert!(writable.0.is_some(), "the socket never filled");
        drop(writable);
        drop(server);
        assert!(client.await.unwrap() == pieces.concat(), "the bytes differ");
    }
}
