//! An origin that misbehaves on purpose: a small HTTP/1.1 server speaking
//! enough of S3's GET and HEAD for the node (path-style keys, `Range`,
//! `If-Match`, `If-None-Match`, `ETag`, `Last-Modified`, `Vary`), which answers
//! normally until a test sets a fault: a body shorter than its
//! `Content-Length`, a reset mid-body, silence, or S3's `503 SlowDown`.
//! It does not check signatures (s3s-fs does that in the other tests); it
//! records every request head it reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::s3::BUCKET;

/// What the origin does with the requests it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers as S3 would.
    None,
    /// Sends the header with the full `Content-Length`, then this many
    /// body bytes, then closes the connection (a clean FIN).
    ShortBody(u64),
    /// Sends the header and this many body bytes, then resets the
    /// connection (RST).
    ResetAfter(u64),
    /// Sends the header and this many body bytes, then nothing more, until
    /// the node closes the connection.
    StallAfter(u64),
    /// Reads the request and never answers.
    StallHeader,
    /// Reads the request and closes the connection without a byte.
    CloseBeforeHeader,
    /// `503 Slow Down` with S3's `SlowDown` error document.
    SlowDown,
}

/// An object the origin holds.
#[derive(Clone)]
struct Object {
    body: Arc<Vec<u8>>,
    etag: String,
    cache_control: Option<String>,
    /// Bodies chosen by one request field, named in `Vary`.
    vary: Option<Arc<Variants>>,
    /// Other fields of its answers.
    fields: Vec<(String, String)>,
}

/// The request field an object varies on, and the body for each of its
/// values; a request without one of them gets the object's own body.
struct Variants {
    field: String,
    bodies: Vec<(String, Arc<Vec<u8>>)>,
}

impl Object {
    /// The body this request selects.
    fn chosen(mut self, req: &Request) -> Object {
        if let Some(vary) = &self.vary {
            let value = req.header(&vary.field);
            if let Some((_, body)) = vary.bodies.iter().find(|(v, _)| Some(v.as_str()) == value) {
                self.etag = etag_of(body);
                self.body = body.clone();
            }
        }
        self
    }
}

#[derive(Default)]
struct State {
    objects: HashMap<String, Object>,
    heads: Vec<String>,
    fault: Option<Fault>,
}

pub struct FaultOrigin {
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// While true, requests are read but not answered.
    held: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A version tag for a body (FNV-1a), quoted as S3 quotes its ETags.
fn etag_of(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

impl FaultOrigin {
    /// Starts the origin on a port of its own, holding no object.
    pub async fn start() -> FaultOrigin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault origin");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (held, held_rx) = watch::channel(false);
        let st = state.clone();
        let task = tokio::spawn(async move {
            // Connection tasks end with the accept loop (dropping the set
            // aborts them).
            let mut connections = JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                connections.spawn(serve(conn, st.clone(), held_rx.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        FaultOrigin {
            port,
            state,
            held,
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts an object under `key` (no leading slash, as in the bucket).
    pub fn put(&self, key: &str, body: &[u8]) {
        self.put_with(key, body, None);
    }

    /// Puts an object that S3 answers with this `Cache-Control`.
    pub fn put_with(&self, key: &str, body: &[u8], cache_control: Option<&str>) {
        let object = Object {
            body: Arc::new(body.to_vec()),
            etag: etag_of(body),
            cache_control: cache_control.map(str::to_string),
            vary: None,
            fields: Vec::new(),
        };
        self.lock().objects.insert(key.to_string(), object);
    }

    /// Puts an object answered with these fields too.
    pub fn put_with_fields(&self, key: &str, body: &[u8], fields: &[(&str, &str)]) {
        self.put(key, body);
        if let Some(object) = self.lock().objects.get_mut(key) {
            object.fields = fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        }
    }

    /// Puts an object whose body depends on the request's `field` (named
    /// in `Vary`): `bodies` by the field's value, `body` without a listed one.
    pub fn put_varying(
        &self,
        key: &str,
        body: &[u8],
        field: &str,
        bodies: &[(&str, &[u8])],
        cache_control: Option<&str>,
    ) {
        let vary = Variants {
            field: field.to_string(),
            bodies: bodies
                .iter()
                .map(|(v, b)| (v.to_string(), Arc::new(b.to_vec())))
                .collect(),
        };
        self.put_with(key, body, cache_control);
        if let Some(object) = self.lock().objects.get_mut(key) {
            object.vary = Some(Arc::new(vary));
        }
    }

    /// The fault every request gets from now on (`Fault::None`: none).
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = (fault != Fault::None).then_some(fault);
    }

    /// Holds every answer back (requests are still read and recorded)
    /// until `release`.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Every request head read so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.lock().heads.clone()
    }

    /// Requests read so far.
    pub fn requests(&self) -> usize {
        self.lock().heads.len()
    }

    /// Requests for `key` read so far.
    pub fn requests_for(&self, key: &str) -> usize {
        let target = format!(" /{BUCKET}/{key}");
        self.lock()
            .heads
            .iter()
            .filter(|h| {
                h.split("\r\n").next().is_some_and(|l| {
                    l.contains(&format!("{target} ")) || l.contains(&format!("{target}?"))
                })
            })
            .count()
    }
}

impl Drop for FaultOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request as the origin reads it.
struct Request {
    method: String,
    key: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    let path = target.split('?').next()?;
    // Path-style S3 keys, or a plain web server's paths.
    let key = path
        .strip_prefix(&format!("/{BUCKET}/"))
        .or_else(|| path.strip_prefix('/'))?
        .to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Request {
        method,
        key,
        headers,
    })
}

/// A single `bytes=A-B`, `bytes=A-` or `bytes=-N` range of `len` bytes,
/// as an inclusive span; `None` when absent, `Some(None)` when it cannot
/// be satisfied.
fn range(spec: Option<&str>, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = spec?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let span = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1))
        }
        (a, "") => {
            let a: u64 = a.parse().ok()?;
            (a < len).then(|| (a, len - 1))
        }
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b && a < len).then(|| (a, b.min(len - 1)))
        }
    };
    Some(span)
}

const HTTP_DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

/// The head and body S3 would send for `req`.
fn answer(req: &Request, object: Option<&Object>) -> (String, Vec<u8>) {
    let Some(object) = object else {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>".to_vec();
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n",
            body.len()
        );
        return (head, body);
    };
    let len = object.body.len() as u64;
    let mut common = format!(
        "ETag: {}\r\nLast-Modified: {HTTP_DATE}\r\nAccept-Ranges: bytes\r\nContent-Type: video/mp4\r\nx-amz-request-id: FAULTORIGIN\r\n",
        object.etag
    );
    if let Some(cc) = &object.cache_control {
        common.push_str(&format!("Cache-Control: {cc}\r\n"));
    }
    if let Some(vary) = &object.vary {
        common.push_str(&format!("Vary: {}\r\n", vary.field));
    }
    for (name, value) in &object.fields {
        common.push_str(&format!("{name}: {value}\r\n"));
    }
    if req
        .header("if-match")
        .is_some_and(|m| m != object.etag && m != "*")
    {
        return (
            "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n".to_string(),
            Vec::new(),
        );
    }
    if req.header("if-none-match") == Some(object.etag.as_str()) {
        return (format!("HTTP/1.1 304 Not Modified\r\n{common}"), Vec::new());
    }
    match range(req.header("range"), len) {
        None => (
            format!("HTTP/1.1 200 OK\r\n{common}Content-Length: {len}\r\n"),
            object.body.to_vec(),
        ),
        Some(None) => (
            format!(
                "HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"
            ),
            Vec::new(),
        ),
        Some(Some((a, b))) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes {a}-{b}/{len}\r\nContent-Length: {}\r\n",
                b - a + 1
            ),
            object.body[a as usize..=b as usize].to_vec(),
        ),
    }
}

const SLOW_DOWN: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FAULTORIGIN</RequestId></Error>";

/// Waits until the peer closes the connection (or sends garbage forever).
async fn hold(conn: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = conn.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

/// Serves one connection: requests one after another (keep-alive) until
/// the node closes it or a fault ends it.
async fn serve(mut conn: TcpStream, state: Arc<Mutex<State>>, mut held: watch::Receiver<bool>) {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head: Vec<u8> = pending.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&head).into_owned();
        let (object, fault) = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.heads.push(text.clone());
            let object = parse_head(&text).and_then(|r| st.objects.get(&r.key).cloned());
            (object, st.fault)
        };
        let Some(req) = parse_head(&text) else {
            let _ = conn
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            return;
        };
        if held.wait_for(|h| !*h).await.is_err() {
            return;
        }
        let fault = fault.unwrap_or(Fault::None);
        if fault == Fault::StallHeader {
            hold(&mut conn).await;
            return;
        }
        if fault == Fault::CloseBeforeHeader {
            return;
        }
        if fault == Fault::SlowDown {
            let head = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: FAULTORIGIN\r\n\r\n",
                SLOW_DOWN.len()
            );
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            if req.method != "HEAD" && conn.write_all(SLOW_DOWN).await.is_err() {
                return;
            }
            continue;
        }
        let object = object.map(|o| o.chosen(&req));
        let (head, body) = answer(&req, object.as_ref());
        let head = format!("{head}Date: {HTTP_DATE}\r\n\r\n");
        if conn.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        if req.method == "HEAD" {
            continue;
        }
        let cut = match fault {
            Fault::ShortBody(n) | Fault::ResetAfter(n) | Fault::StallAfter(n) => {
                usize::try_from(n).unwrap_or(usize::MAX).min(body.len())
            }
            _ => body.len(),
        };
        if conn.write_all(&body[..cut]).await.is_err() {
            return;
        }
        match fault {
            // A fault that leaves nothing out ends like an ordinary answer.
            _ if cut == body.len() => {}
            Fault::ShortBody(_) => {
                let _ = conn.flush().await;
                let _ = conn.shutdown().await;
                return;
            }
            Fault::ResetAfter(_) => {
                // Closing with a zero linger time sends RST, not FIN (and
                // does not block, which is why tokio deprecates linger).
                #[allow(deprecated)]
                let _ = conn.set_linger(Some(Duration::ZERO));
                return;
            }
            Fault::StallAfter(_) => {
                hold(&mut conn).await;
                return;
            }
            _ => {}
        }
    }
}
