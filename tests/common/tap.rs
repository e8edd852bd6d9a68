//! A TCP tap between the node and S3: forwards bytes both ways and records
//! every request head the node sends, so tests can count origin requests and
//! see exactly what reached the origin. It can also misbehave on purpose.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass everything through.
    Forward,
    /// Accept and read, never answer (origin read timeout).
    Stall,
    /// Pass the first `n` response bytes of each connection, then close it
    /// (an origin that dies mid-body).
    CutAfter(u64),
    /// Pass the first `n` response bytes of each connection, then hold the
    /// rest back until the mode changes (a fill kept in progress).
    HoldAfter(u64),
    /// Answer every conditional request (`If-None-Match`) with `304 Not
    /// Modified` as S3 does when the object is unchanged (s3s-fs always
    /// answers 200); other requests pass through.
    NotModified,
}

#[derive(Default)]
struct State {
    heads: Vec<String>,
    response_bytes: u64,
}

pub struct Tap {
    pub port: u16,
    state: Arc<Mutex<State>>,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Tap {
    pub async fn start(upstream_port: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (st, rx) = (st.clone(), mode_rx.clone());
                tokio::spawn(serve(client, upstream_port, st, rx));
            }
        });
        Tap {
            port,
            state,
            mode,
            task,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Every request head seen so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.state.lock().unwrap().heads.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().heads.len()
    }

    /// Requests with `method` (`GET`, `HEAD`) so far.
    pub fn count(&self, method: &str) -> usize {
        let prefix = format!("{method} ");
        self.heads()
            .iter()
            .filter(|h| h.starts_with(&prefix))
            .count()
    }

    /// Origin requests so far: (GETs, HEADs). The first plain GET of an
    /// object the node does not hold is a probe GET of its first slice
    /// (`Range: bytes=0-`, `slice_size` bytes, 4 MiB by default): it learns
    /// the size (to choose between slices and the whole object) and brings a
    /// smaller object whole; a larger one not sliced then costs the
    /// ordinary GET too.
    pub fn origin_requests(&self) -> (usize, usize) {
        (self.count("GET"), self.count("HEAD"))
    }

    /// Probe GETs so far: the first slice, not pinned to a version by
    /// `If-Match` (as slice fetches are).
    pub fn probes(&self) -> usize {
        self.heads().iter().filter(|h| is_probe(h)).count()
    }

    /// Requests that learnt an object so far: HEADs and probe GETs.
    pub fn learning(&self) -> usize {
        self.count("HEAD") + self.probes()
    }

    /// Bytes sent by the origin (heads and bodies) that the tap passed on.
    pub fn response_bytes(&self) -> u64 {
        self.state.lock().unwrap().response_bytes
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    state: Arc<Mutex<State>>,
    mut mode: watch::Receiver<Mode>,
) {
    if *mode.borrow() == Mode::Stall {
        let mut sink = [0u8; 4096];
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
        return;
    }
    if *mode.borrow() == Mode::NotModified {
        return answer_not_modified(client, upstream_port, state).await;
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let st = state.clone();
    let up = tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            // Requests to S3 are GET/HEAD without a body: a head ends at
            // the blank line.
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = pending.drain(..end + 4).collect();
                st.lock()
                    .unwrap()
                    .heads
                    .push(String::from_utf8_lossy(&head).into_owned());
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed: u64 = 0;
    'conn: loop {
        let n = match ur.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let current = *mode.borrow_and_update();
            let limit = match current {
                Mode::CutAfter(l) | Mode::HoldAfter(l) => l,
                _ => u64::MAX,
            };
            let room = usize::try_from(limit.saturating_sub(passed)).unwrap_or(usize::MAX);
            let now = chunk.len().min(room);
            if now > 0 {
                if cw.write_all(&chunk[..now]).await.is_err() {
                    break 'conn;
                }
                passed += now as u64;
                state.lock().unwrap().response_bytes += now as u64;
                chunk = &chunk[now..];
                continue;
            }
            match current {
                // Close mid-body: the node sees fewer bytes than promised.
                Mode::CutAfter(_) => break 'conn,
                // Wait for the test to change the mode, or the node to go.
                _ => {
                    if mode.changed().await.is_err() {
                        break 'conn;
                    }
                }
            }
        }
    }
    drop(cw);
    up.abort();
}

/// Reads one request head; a conditional one is answered 304 here, any
/// other is forwarded on a fresh origin connection (one request per
/// connection in this mode).
async fn answer_not_modified(mut client: TcpStream, upstream_port: u16, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    state.lock().unwrap().heads.push(text.clone());
    if text.to_ascii_lowercase().contains("\r\nif-none-match:") {
        let etag = text
            .lines()
            .find_map(|l| l.strip_prefix("if-none-match: "))
            .unwrap_or("\"x\"")
            .to_string();
        let resp =
            format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n");
        let _ = client.write_all(resp.as_bytes()).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    // One request per connection: ask the origin to close after answering,
    // so that the node's next request comes on a new connection and is
    // inspected again (`connection` is not a signed header).
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let mut forwarded = head[..end + 2].to_vec();
    forwarded.extend_from_slice(b"connection: close\r\n\r\n");
    forwarded.extend_from_slice(&head[end + 4..]);
    if upstream.write_all(&forwarded).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Whether a request head is a probe GET: the object's first slice (a
/// range from byte 0), not pinned to a version.
fn is_probe(head: &str) -> bool {
    let h = head.to_ascii_lowercase();
    h.starts_with("get ") && h.contains("\r\nrange: bytes=0-") && !h.contains("\r\nif-match:")
}
