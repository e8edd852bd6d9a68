//! The hit lane's hop to the PoP member that owns a request's key: the
//! request written on a kept-alive connection to the owner's peer
//! listener, the owner's answer head read and parsed as Pingora's HTTP/1
//! client parses it, and its body relayed to the client as it arrives
//! ([`Relay`], written to an HTTP/1 client by [`super`], to an HTTP/2
//! stream by [`super::h2`]).
//!
//! What Pingora's proxy path does for the same forward (a session per
//! request, its phases, its upstream session and connection pool) costs
//! the forwarding node about three times a memory hit; here the forward
//! is one write and one read to the owner and one write to the client.
//!
//! The lane relays only what it can frame exactly: an answer with a
//! `Content-Length` (or none to send: a HEAD, 204, 304). Anything else, or
//! an owner that fails before its head arrived, is [`Failed`] and the
//! request goes on on Pingora's path, which frames any answer and fails
//! over to the next node ([`crate::proxy::handed`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora_http::{IntoCaseHeaderName, ResponseHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fields an owner's answer head may have; more is left to Pingora.
const MAX_FIELDS: usize = 128;

/// The largest answer head read; a larger one is left to Pingora.
const MAX_HEAD: usize = 64 * 1024;

/// Room made in the read buffer before each read of the owner's answer.
const READ_SIZE: usize = 64 * 1024;

/// Idle connections kept per owner, by each thread.
const IDLE_PER_OWNER: usize = 64;

/// How long a connection stays in the pool unused: well within the 60 s an
/// owner keeps an idle connection open ([`super::IDLE`]), so that the
/// owner does not close one just as it is taken.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// The time limits of a hop.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a new connection to the owner.
    pub connect: Duration,
    /// For each write to and read from the owner.
    pub io: Duration,
}

/// Why a forward gave no answer to relay. Nothing has been sent to the
/// client.
#[derive(Debug)]
pub enum Failed {
    /// No connection could be made to the owner.
    Connect { timeout: bool },
    /// The owner took the request and failed before its whole head came
    /// back.
    Exchange { timeout: bool },
    /// The owner answered with what the lane does not frame (no length, a
    /// 1xx, a head too large or not HTTP/1): Pingora's path asks again.
    Unrelayable,
}

impl Failed {
    /// The `kind` label of the peer error counted for it, if any.
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            Failed::Connect { timeout: true } | Failed::Exchange { timeout: true } => {
                Some("timeout")
            }
            Failed::Connect { timeout: false } => Some("connect"),
            Failed::Exchange { timeout: false } => Some("other"),
            Failed::Unrelayable => None,
        }
    }
}

/// The owner's answer: its head, and the connection its body comes on.
pub struct Reply {
    pub header: ResponseHeader,
    conn: Conn,
}

/// An answer's body on its way from the owner to the client.
pub struct Relay {
    conn: Conn,
}

/// A connection to an owner with what has been read of it.
struct Conn {
    owner: SocketAddr,
    /// `None` once the answer has all come and the connection went back
    /// to the pool.
    stream: Option<TcpStream>,
    /// Bytes read past the answer head.
    buf: BytesMut,
    /// The body bytes still to come.
    left: u64,
    /// The owner keeps the connection open after the answer.
    keep: bool,
    io: Duration,
}

/// One thread's idle connections to owners.
#[derive(Default)]
struct Idle {
    by_owner: HashMap<SocketAddr, Vec<(TcpStream, Instant)>>,
    /// When connections past [`IDLE_FOR`] were last dropped for every
    /// owner (one no longer asked, a node gone from the ring, included).
    swept: Option<Instant>,
}

thread_local! {
    /// Idle connections to owners, each thread its own: a connection is
    /// registered with the reactor of the thread that opened it (each
    /// worker thread runs its own runtime), and is used there again.
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// An idle connection to `owner` that is still open.
fn take(owner: SocketAddr) -> Option<TcpStream> {
    let now = Instant::now();
    loop {
        let (stream, since) = IDLE.with_borrow_mut(|idle| idle.by_owner.get_mut(&owner)?.pop())?;
        if now.duration_since(since) < IDLE_FOR && still_open(&stream) {
            return Some(stream);
        }
    }
}

/// Keeps a connection whose answer has all been read, for the next
/// request to `owner`.
fn give_back(owner: SocketAddr, stream: TcpStream) {
    IDLE.with_borrow_mut(|idle| {
        let now = Instant::now();
        let fresh = |kept: &mut Vec<(TcpStream, Instant)>| {
            kept.retain(|(_, since)| now.duration_since(*since) < IDLE_FOR);
        };
        if idle
            .swept
            .is_none_or(|at| now.duration_since(at) >= IDLE_FOR)
        {
            idle.by_owner.retain(|_, kept| {
                fresh(kept);
                !kept.is_empty()
            });
            idle.swept = Some(now);
        }
        let kept = idle.by_owner.entry(owner).or_default();
        fresh(kept);
        if kept.len() < IDLE_PER_OWNER {
            kept.push((stream, now));
        }
    });
}

/// Whether an idle connection has neither been closed by the owner nor
/// sent anything unasked.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Sends `request` (a whole HTTP/1 head, no body) to `owner` and reads the
/// answer's head. A kept connection that turns out closed before any byte
/// of the answer came back is replaced by a new one, once (the request is
/// a GET or HEAD).
pub async fn exchange(
    owner: SocketAddr,
    request: &[u8],
    head_only: bool,
    timeouts: Timeouts,
) -> Result<Reply, Failed> {
    if let Some(stream) = take(owner) {
        match ask(owner, stream, request, head_only, timeouts.io).await {
            Ok(reply) => return Ok(reply),
            Err(Asked::Nothing) => {}
            Err(Asked::Failed(failed)) => return Err(failed),
        }
    }
    let stream = match tokio::time::timeout(timeouts.connect, TcpStream::connect(owner)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) => return Err(Failed::Connect { timeout: false }),
        Err(_) => return Err(Failed::Connect { timeout: true }),
    };
    // Heads and small answers go out at once, as Pingora's connections do.
    let _ = stream.set_nodelay(true);
    match ask(owner, stream, request, head_only, timeouts.io).await {
        Ok(reply) => Ok(reply),
        Err(Asked::Nothing) => Err(Failed::Exchange { timeout: false }),
        Err(Asked::Failed(failed)) => Err(failed),
    }
}

/// How an exchange on one connection failed.
enum Asked {
    /// The connection failed before a byte of the answer came back.
    Nothing,
    Failed(Failed),
}

async fn ask(
    owner: SocketAddr,
    mut stream: TcpStream,
    request: &[u8],
    head_only: bool,
    io: Duration,
) -> Result<Reply, Asked> {
    match tokio::time::timeout(io, stream.write_all(request)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(Asked::Nothing),
        Err(_) => return Err(Asked::Failed(Failed::Exchange { timeout: true })),
    }
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if buf.len() > MAX_HEAD {
            return Err(Asked::Failed(Failed::Unrelayable));
        }
        buf.reserve(4096);
        let read = match tokio::time::timeout(io, stream.read_buf(&mut buf)).await {
            Ok(read) => read,
            Err(_) => return Err(Asked::Failed(Failed::Exchange { timeout: true })),
        };
        match read {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Asked::Nothing),
            Ok(0) | Err(_) => return Err(Asked::Failed(Failed::Exchange { timeout: false })),
            Ok(_) => {}
        }
        match parse_head(&mut buf, head_only) {
            Head::Partial => continue,
            Head::Unrelayable => return Err(Asked::Failed(Failed::Unrelayable)),
            Head::Complete { header, body, keep } => {
                if buf.len() as u64 > body {
                    // More than the answer: the connection is not reused.
                    return Err(Asked::Failed(Failed::Unrelayable));
                }
                // An answer without a body is whole already.
                let stream = match (body, keep) {
                    (0, true) => {
                        give_back(owner, stream);
                        None
                    }
                    _ => Some(stream),
                };
                let conn = Conn {
                    owner,
                    stream,
                    buf,
                    left: body,
                    keep,
                    io,
                };
                return Ok(Reply { header, conn });
            }
        }
    }
}

/// An answer head as read so far. On the stack once per forward.
#[allow(clippy::large_enum_variant)]
enum Head {
    Partial,
    Unrelayable,
    Complete {
        header: ResponseHeader,
        /// The body's length.
        body: u64,
        keep: bool,
    },
}

/// Parses an owner's answer head as Pingora's HTTP/1 client does (the
/// same parser, the fields appended in order with their case kept, the
/// version and reason phrase set), and reads its framing. A whole head is
/// split off `buf`.
fn parse_head(buf: &mut BytesMut, head_only: bool) -> Head {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Unrelayable,
    };
    let (Some(code), Some(1)) = (parsed.code, parsed.version) else {
        return Head::Unrelayable;
    };
    if (100..200).contains(&code) {
        return Head::Unrelayable;
    }
    let Ok(mut header) = ResponseHeader::build(code, Some(parsed.headers.len())) else {
        return Head::Unrelayable;
    };
    header.set_version(http::Version::HTTP_11);
    if let Some(reason) = parsed.reason
        && header.set_reason_phrase(Some(reason)).is_err()
    {
        return Head::Unrelayable;
    }
    // Where each field is in the head, to take its bytes without a copy.
    let base = buf.as_ptr() as usize;
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        start..start + part.len()
    };
    let mut spans = Vec::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        spans.push((at(field.name.as_bytes()), at(field.value)));
    }
    let head = buf.split_to(len).freeze();
    for (name, value) in spans {
        let name = head.slice(name).into_case_header_name();
        let value = pingora_http::header_value_from_raw(head.slice(value));
        if header.append_header(name, value).is_err() {
            return Head::Unrelayable;
        }
    }
    if header.headers.contains_key(TRANSFER_ENCODING) {
        return Head::Unrelayable;
    }
    let keep = !header
        .headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = if head_only || matches!(code, 204 | 304) {
        0
    } else {
        let mut lengths = header.headers.get_all(CONTENT_LENGTH).iter();
        let length = lengths
            .next()
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (length, lengths.next()) {
            (Some(length), None) => length,
            _ => return Head::Unrelayable,
        }
    };
    Head::Complete { header, body, keep }
}

impl Reply {
    /// The body, to relay after `header` has been edited.
    pub fn into_relay(self) -> (ResponseHeader, Relay) {
        (self.header, Relay { conn: self.conn })
    }
}

impl Relay {
    /// The body bytes still to come to the client.
    pub fn len(&self) -> u64 {
        self.conn.left
    }

    /// The body's next bytes as they come from the owner; `None` once all
    /// of it came. The connection to the owner goes back to the pool with
    /// the last bytes.
    pub async fn next(&mut self) -> io::Result<Option<Bytes>> {
        let conn = &mut self.conn;
        if conn.left == 0 {
            return Ok(None);
        }
        if conn.buf.is_empty() {
            conn.buf
                .reserve(READ_SIZE.min(usize::try_from(conn.left).unwrap_or(READ_SIZE)));
            let Some(stream) = conn.stream.as_mut() else {
                return Err(io::Error::other("the owner's connection was given back"));
            };
            let read = tokio::time::timeout(conn.io, stream.read_buf(&mut conn.buf))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "the owner sent nothing in time")
                })??;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the owner closed the connection before the whole body",
                ));
            }
        }
        let mut chunk = conn.buf.split().freeze();
        if chunk.len() as u64 > conn.left {
            // More than the answer: the connection is not reused.
            conn.keep = false;
            chunk.truncate(usize::try_from(conn.left).unwrap_or(chunk.len()));
        }
        conn.left -= chunk.len() as u64;
        if conn.left == 0
            && conn.keep
            && let Some(stream) = conn.stream.take()
        {
            give_back(conn.owner, stream);
        }
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (answer head, asked with HEAD, what it is: `None` partial, `Some(None)`
    /// not relayed, `Some(Some((status, body length, kept)))`).
    type Case = (&'static str, bool, Option<Option<(u16, u64, bool)>>);

    #[test]
    fn answer_heads_are_framed_or_left_to_pingora() {
        let cases: [Case; 14] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Some(Some((200, 5, true))),
            ),
            (
                "HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\n\r\n",
                false,
                Some(Some((206, 10, true))),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Some(Some((200, 0, true))),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
                false,
                Some(Some((304, 0, true))),
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Some(Some((204, 0, true))),
            ),
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                false,
                Some(Some((404, 0, false))),
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", false, None),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Some(None),
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Some(None)),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                false,
                Some(None),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                false,
                Some(None),
            ),
            ("HTTP/1.1 100 Continue\r\n\r\n", false, Some(None)),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Some(None),
            ),
            ("NOT HTTP\r\n\r\n", false, Some(None)),
        ];
        for (head, head_only, want) in cases {
            let mut buf = BytesMut::from(format!("{head}body!").as_bytes());
            let got = match parse_head(&mut buf, head_only) {
                Head::Partial => None,
                Head::Unrelayable => Some(None),
                Head::Complete { header, body, keep } => {
                    // The head is taken off the buffer, the body left.
                    assert_eq!(&buf[..], b"body!", "{head:?}");
                    Some(Some((header.status.as_u16(), body, keep)))
                }
            };
            assert_eq!(got, want, "{head:?}");
        }
    }

    #[test]
    fn fields_keep_their_order_case_and_reason() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 Fine\r\nX-Cache: HIT\r\ncontent-length: 0\r\nETag: \"v1\"\r\n\r\n"[..],
        );
        let Head::Complete { header, .. } = parse_head(&mut buf, false) else {
            panic!("not parsed");
        };
        let mut wire = BytesMut::new();
        header.header_to_h1_wire(&mut wire);
        assert_eq!(
            &wire[..],
            b"X-Cache: HIT\r\ncontent-length: 0\r\nETag: \"v1\"\r\n"
        );
        assert_eq!(header.get_reason_phrase(), Some("Fine"));
    }

    #[tokio::test]
    async fn a_closed_kept_connection_is_replaced_and_a_dead_owner_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = listener.local_addr().unwrap();
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            io: Duration::from_secs(5),
        };
        // Each connection answers one request, then closes.
        let serving = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut c, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await.unwrap();
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
        });
        let ask = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for _ in 0..2 {
            let reply = exchange(owner, ask, false, timeouts).await.unwrap();
            assert_eq!(reply.header.status, 200);
            let (_, mut relay) = reply.into_relay();
            assert_eq!(relay.len(), 2);
            assert_eq!(relay.next().await.unwrap().as_deref(), Some(&b"ok"[..]));
            assert_eq!(relay.next().await.unwrap(), None);
            // The whole answer came: the connection is back in the pool.
            assert!(relay.conn.stream.is_none());
        }
        serving.await.unwrap();
        // The owner is gone: its kept connection is closed, and a new one
        // is refused.
        match exchange(owner, ask, false, timeouts).await {
            Err(failed @ Failed::Connect { .. }) => {
                assert_eq!(failed.error_kind(), Some("connect"));
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("answered by a closed owner"),
        }
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// A field name and value an owner may send.
        fn field() -> impl Strategy<Value = (String, String)> {
            ("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,24}")
                .prop_filter("not a framing field", |(n, _)| {
                    let n = n.to_ascii_lowercase();
                    n != "content-length" && n != "transfer-encoding" && n != "connection"
                })
                .prop_map(|(n, v)| (n, v.trim().to_owned()))
        }

        proptest! {
            /// Any bytes from an owner (often starting as a head does) are
            /// a head, part of one, or left to Pingora: never a panic; a
            /// head is taken off the buffer, a part of one left in it.
            #[test]
            fn any_bytes_are_framed_or_refused(
                start in prop_oneof![Just(""), Just("HTTP/1.1 200 OK\r\n"), Just("HTTP/1.1 206 \r\nContent-Length: 3\r\n")],
                middle in proptest::collection::vec(any::<u8>(), 0..256),
                end in prop_oneof![Just(""), Just("\r\n"), Just("\r\n\r\n")],
                head_only in any::<bool>(),
            ) {
                let mut bytes = start.as_bytes().to_vec();
                bytes.extend_from_slice(&middle);
                bytes.extend_from_slice(end.as_bytes());
                let mut buf = BytesMut::from(&bytes[..]);
                match parse_head(&mut buf, head_only) {
                    Head::Complete { .. } => prop_assert!(buf.len() < bytes.len()),
                    Head::Partial => prop_assert_eq!(&buf[..], &bytes[..]),
                    // The connection is dropped: the buffer goes with it.
                    Head::Unrelayable => {}
                }
            }

            /// A head an owner writes is read back field for field, in
            /// order, with its length, and what follows it left as body.
            #[test]
            fn written_heads_read_back(
                status in 200u16..600,
                fields in proptest::collection::vec(field(), 0..12),
                length in 0u64..1_000_000,
                body in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                prop_assume!(status != 204 && status != 304);
                let mut wire = format!("HTTP/1.1 {status} Whatever\r\n");
                for (n, v) in &fields {
                    wire.push_str(&format!("{n}: {v}\r\n"));
                }
                wire.push_str(&format!("Content-Length: {length}\r\n\r\n"));
                let mut buf = BytesMut::from(wire.as_bytes());
                buf.extend_from_slice(&body);
                let Head::Complete { header, body: got, keep } = parse_head(&mut buf, false) else {
                    return Err(TestCaseError::fail(format!("not read: {wire:?}")));
                };
                prop_assert_eq!(header.status.as_u16(), status);
                prop_assert_eq!(got, length);
                prop_assert!(keep);
                prop_assert_eq!(&buf[..], &body[..]);
                let read: Vec<(String, String)> = header
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                let mut want: Vec<(String, String)> = fields
                    .iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                    .collect();
                want.push(("content-length".into(), length.to_string()));
                // The map groups a repeated name's values at its first place.
                let mut grouped: Vec<(String, String)> = Vec::new();
                for (n, _) in &want {
                    if grouped.iter().any(|(g, _)| g == n) {
                        continue;
                    }
                    for (m, v) in &want {
                        if m == n {
                            grouped.push((m.clone(), v.clone()));
                        }
                    }
                }
                prop_assert_eq!(read, grouped);
            }
        }
    }
}
