//! A kept-alive HTTP/1.1 client connection, for tests that follow what
//! one connection is answered request after request.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{Headers, header, parse_answer};

/// A kept-alive HTTP/1.1 connection that reads one whole answer per
/// request (a `Content-Length` or chunked body).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The most one read takes.
    pub read_chunk: usize,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    /// A connection made by the caller (with its own socket options).
    pub fn from_stream(stream: TcpStream) -> Conn {
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            read_chunk: 16384,
        }
    }

    /// Sends a request in `pieces` writes and reads its answer.
    pub async fn ask_in(
        &mut self,
        method: &str,
        target: &str,
        extra: &[(&str, &str)],
        pieces: usize,
    ) -> (u16, Headers, Vec<u8>) {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: cdn.example\r\n");
        for (n, v) in extra {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let bytes = req.as_bytes();
        let step = bytes.len().div_ceil(pieces);
        for piece in bytes.chunks(step) {
            self.stream.write_all(piece).await.expect("send");
            self.stream.flush().await.expect("send");
        }
        tokio::time::timeout(Duration::from_secs(30), self.answer(method == "HEAD"))
            .await
            .unwrap_or_else(|_| panic!("{method} {target}: no answer"))
    }

    pub async fn ask(
        &mut self,
        method: &str,
        target: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Headers, Vec<u8>) {
        self.ask_in(method, target, extra, 1).await
    }

    pub async fn answer(&mut self, head: bool) -> (u16, Headers, Vec<u8>) {
        loop {
            if let Some(len) = self.whole(head) {
                let answer: Vec<u8> = self.buf.drain(..len).collect();
                return parse_answer(&answer, head).expect("an HTTP answer");
            }
            let mut chunk = vec![0u8; self.read_chunk];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before a whole answer: {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The length of the first whole answer in the buffer.
    fn whole(&self, head: bool) -> Option<usize> {
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let (status, headers, _) = parse_answer(&self.buf[..end], true).ok()?;
        if head || status == 304 || status == 204 {
            return Some(end);
        }
        if let Some(len) = header(&headers, "content-length") {
            let len: usize = len.parse().ok()?;
            return (self.buf.len() >= end + len).then_some(end + len);
        }
        let rest = &self.buf[end..];
        let last = rest.windows(5).position(|w| w == b"0\r\n\r\n")?;
        Some(end + last + 5)
    }

    /// Whether the node closed the connection (within 10 s).
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}
