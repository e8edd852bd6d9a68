//! The origin's side of slice fetches: a HEAD or a probe GET for an
//! object's record, and Range GETs pinned to one version by `If-Match`,
//! each answer checked to be exactly the span of the version asked for.

use std::time::SystemTime;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::mpsc;

use super::{Chunks, Ctx, FetchError, SliceJob, failed, transport};
use crate::metrics::{Metrics, status_class};
use crate::origin::response::ERROR_BODY_LIMIT;
use crate::origin::{Origin, OriginError};

/// Connections tried per request: the shield that owns the key, the next
/// ones on the ring, then the origin.
const MAX_UPSTREAMS: usize = 4;

/// One request to the origin (or the shield that owns `ring_key`): the
/// session with its response header read. A node that cannot be reached is
/// passed over for a while and the next one is asked.
async fn exchange(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    ring_key: &[u8],
    (path, query): (&str, &str),
    prepared: &RequestHeader,
) -> Result<(HttpSession, ResponseHeader, HttpPeer), FetchError> {
    let mut tried = Vec::new();
    let (mut session, req, peer, to) = loop {
        let to = origin
            .choose(ring_key, &tried)
            .ok_or_else(|| failed("no origin or parent left"))?;
        let peer = origin
            .peer_of(to)
            .ok_or_else(|| failed("no origin address"))?;
        match connector.get_http_session(&peer).await {
            Ok((session, _reused)) => {
                let req = origin
                    .request_to(to, path, query, prepared, None, SystemTime::now())
                    .map_err(failed)?;
                break (session, req, peer, to);
            }
            Err(e) => match to.node() {
                Some(node) if tried.len() + 1 < MAX_UPSTREAMS => {
                    origin.mark_failed(to);
                    metrics.count_peer_error(to, "connect");
                    tried.push(node);
                }
                _ => return Err(transport("origin connect", &e)),
            },
        }
    };
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| transport("origin request", &e))?;
    session.set_read_timeout(Some(origin.config.read_timeout));
    session.set_write_timeout(Some(origin.config.read_timeout));
    session
        .read_response_header()
        .await
        .map_err(|e| transport("origin response", &e))?;
    let resp = session
        .response_header()
        .cloned()
        .ok_or_else(|| failed("origin response without a header"))?;
    if to == crate::origin::Upstream::Direct {
        metrics
            .origin_requests
            .with_label_values(&[status_class(resp.status.as_u16())])
            .inc();
    } else {
        metrics.count_forward(to);
    }
    Ok((session, resp, peer))
}

/// Puts the client's `CDN-Loop` entries on a fetch it started: a hop to
/// another node appends this node's entry after them.
fn carry_hops(
    prepared: &mut RequestHeader,
    hops: Option<&http::HeaderValue>,
) -> Result<(), FetchError> {
    if let Some(hops) = hops {
        prepared
            .insert_header(crate::cluster::cdn_loop::HEADER, hops.clone())
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}

/// Sends `method` for the object's start, routed by its first slice's ring
/// key, with the hops carried and, given `first`, `Range: bytes=0-(first-1)`.
async fn ask_start(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    (path, query): (&str, &str),
    hops: Option<&http::HeaderValue>,
    method: &str,
    first: Option<u64>,
) -> Result<(HttpSession, ResponseHeader, HttpPeer), FetchError> {
    let mut prepared =
        RequestHeader::build(method, b"/", None).map_err(|e| failed(e.to_string()))?;
    carry_hops(&mut prepared, hops)?;
    if let Some(len) = first {
        prepared
            .insert_header("range", format!("bytes=0-{}", len - 1))
            .map_err(|e| failed(e.to_string()))?;
    }
    let ring_key = crate::cluster::ring_key(path, query, Some(0));
    exchange(
        connector,
        origin,
        metrics,
        &ring_key,
        (path, query),
        &prepared,
    )
    .await
}

/// Asks the origin for the object's header with HEAD (no body).
pub async fn head(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    (path, query): (&str, &str),
    hops: Option<&http::HeaderValue>,
) -> Result<ResponseHeader, FetchError> {
    metrics.slices.origin_head_requests.inc();
    let (session, resp, _) = ask_start(
        connector,
        origin,
        metrics,
        (path, query),
        hops,
        "HEAD",
        None,
    )
    .await?;
    // A HEAD answer has no body; the connection is not reused, to be safe.
    drop(session);
    Ok(resp)
}

/// What a probe GET brought back.
pub struct Probe {
    /// The origin's answer.
    pub resp: ResponseHeader,
    /// The object's length, when the answer is a 206 starting at byte 0
    /// (`Content-Range: bytes 0-E/T`).
    pub total: Option<u64>,
    /// S3's error code, when the answer is an error document.
    pub s3_code: Option<String>,
    /// The answer with its body unread, when it is exactly the asked span
    /// or the whole object (`span` bytes from byte 0): the caller keeps its
    /// bytes or drops it.
    pub opened: Option<(HttpSession, HttpPeer)>,
    /// The bytes `opened` brings.
    pub span: u64,
}

impl Probe {
    /// The answer holds the whole object.
    pub fn is_whole(&self) -> bool {
        self.opened.is_some() && self.total == Some(self.span)
    }
}

/// The object length of a `Content-Range: bytes 0-E/T` answer whose span
/// is `0..=E` with E < T; anything else (another start, `*`, garbage) is
/// `None`.
fn span_from_zero(resp: &ResponseHeader) -> Option<(u64, u64)> {
    let v = resp
        .headers
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(start) && all_digits(end) && all_digits(total)) {
        return None;
    }
    let (start, end, total): (u64, u64, u64) =
        (start.parse().ok()?, end.parse().ok()?, total.parse().ok()?);
    (start == 0 && end < total).then_some((end, total))
}

/// Asks the origin for the object's first `len` bytes with a Range GET (no
/// `If-Match`: the version is not known yet). An answer that is exactly
/// those bytes, or the whole object when shorter, is handed back unread
/// (`opened`); otherwise only the header is kept and the connection
/// dropped.
pub async fn probe(
    connector: &Connector,
    origin: &Origin,
    metrics: &Metrics,
    (path, query): (&str, &str),
    hops: Option<&http::HeaderValue>,
    len: u64,
) -> Result<Probe, FetchError> {
    metrics.slices.origin_probe_requests.inc();
    let (mut session, resp, peer) = ask_start(
        connector,
        origin,
        metrics,
        (path, query),
        hops,
        "GET",
        Some(len),
    )
    .await?;
    let span = (resp.status.as_u16() == 206)
        .then(|| span_from_zero(&resp))
        .flatten();
    let Some((end, total)) = span else {
        // Not a usable answer: its body is not read, nor the connection
        // reused; only an error document's first bytes, for S3's code.
        let s3_code = if resp.status.as_u16() >= 300 {
            error_code(&mut session, metrics).await
        } else {
            None
        };
        return Ok(Probe {
            resp,
            total: None,
            s3_code,
            opened: None,
            span: 0,
        });
    };
    let span = end + 1;
    let usable = span == len.min(total);
    Ok(Probe {
        resp,
        total: Some(total),
        s3_code: None,
        opened: usable.then_some((session, peer)),
        span,
    })
}

/// Reads an answer's whole body of `len` bytes into memory.
pub async fn read_whole(
    connector: &Connector,
    metrics: &Metrics,
    (mut session, peer): (HttpSession, HttpPeer),
    len: u64,
) -> Result<Bytes, FetchError> {
    let mut body = Vec::with_capacity(len as usize);
    while append_chunk(&mut session, metrics, &mut body).await? {
        if body.len() as u64 > len {
            return Err(failed("origin sent more than the probed span"));
        }
    }
    if body.len() as u64 != len {
        return Err(failed(format!(
            "origin sent {} of {len} probed bytes",
            body.len()
        )));
    }
    if session.response_done() {
        connector.release_http_session(session, &peer, None).await;
    }
    Ok(Bytes::from(body))
}

/// The `<Code>` of the error document an answer carries, from at most its
/// first `ERROR_BODY_LIMIT` bytes; `None` when there is none or reading
/// fails.
async fn error_code(session: &mut HttpSession, metrics: &Metrics) -> Option<String> {
    let mut captured = Vec::new();
    while captured.len() < ERROR_BODY_LIMIT {
        match next_chunk(session, metrics).await {
            Ok(Some(chunk)) => captured.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    captured.truncate(ERROR_BODY_LIMIT);
    crate::origin::response::error_code(&captured)
}

/// Sends a Range GET for `[from, to)` of the job's object pinned by
/// `If-Match`, and checks the answer is exactly that span of that version.
pub(super) async fn open_span(
    ctx: Ctx<'_>,
    job: &SliceJob,
    from: u64,
    to: u64,
) -> Result<(HttpSession, HttpPeer), FetchError> {
    let mut prepared =
        RequestHeader::build("GET", b"/", None).map_err(|e| failed(e.to_string()))?;
    let range = format!("bytes={}-{}", from, to - 1);
    prepared
        .insert_header("range", &range)
        .map_err(|e| failed(e.to_string()))?;
    prepared
        .insert_header("if-match", &job.etag)
        .map_err(|e| failed(e.to_string()))?;
    carry_hops(&mut prepared, job.hops.as_ref())?;
    ctx.metrics.slices.origin_range_requests.inc();
    let ring_key = crate::cluster::ring_key(&job.path, &job.query, Some(job.start));
    let (session, resp, peer) = exchange(
        ctx.connector,
        ctx.origin,
        ctx.metrics,
        &ring_key,
        (&job.path, &job.query),
        &prepared,
    )
    .await?;
    match resp.status.as_u16() {
        206 => {}
        412 => return Err(FetchError::VersionChanged),
        s => return Err(failed(format!("origin answered {s} to a slice request"))),
    }
    let etag = resp.headers.get(http::header::ETAG).map(|v| v.as_bytes());
    if etag != Some(job.etag.as_bytes()) {
        return Err(FetchError::VersionChanged);
    }
    let want_range = format!("bytes {}-{}/{}", from, to - 1, job.object_len);
    let got_range = resp
        .headers
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok());
    if got_range != Some(want_range.as_str()) {
        // Another length is another version; anything else is a bad answer.
        let other_len = got_range
            .and_then(|v| v.rsplit_once('/'))
            .is_some_and(|(_, l)| l != job.object_len.to_string());
        return Err(if other_len {
            FetchError::VersionChanged
        } else {
            failed(format!("origin sent {got_range:?} for {want_range}"))
        });
    }
    Ok((session, peer))
}

/// The next body chunk of a span, counting origin bytes and, when the body
/// fails (reset, cut short, timed out), the origin error; `None` at its end.
pub(super) async fn next_chunk(
    session: &mut HttpSession,
    metrics: &Metrics,
) -> Result<Option<Bytes>, FetchError> {
    let chunk = session
        .read_response_body()
        .await
        .map_err(|e| body_failed(metrics, &e))?;
    if let Some(c) = &chunk {
        metrics.origin_bytes.inc_by(c.len() as u64);
    }
    Ok(chunk)
}

/// Appends the answer's next body chunk to `body`; `false` at its end. Over
/// HTTP/1 the chunk is copied once, from the session's buffer (not into a
/// `Bytes` of its own first, as [`next_chunk`] takes it).
async fn append_chunk(
    session: &mut HttpSession,
    metrics: &Metrics,
    body: &mut Vec<u8>,
) -> Result<bool, FetchError> {
    let HttpSession::H1(h1) = session else {
        let chunk = next_chunk(session, metrics).await?;
        if let Some(chunk) = &chunk {
            body.extend_from_slice(chunk);
        }
        return Ok(chunk.is_some());
    };
    let chunk = h1
        .read_body_ref()
        .await
        .map_err(|e| body_failed(metrics, &e))?;
    if let Some(chunk) = chunk {
        metrics.origin_bytes.inc_by(chunk.len() as u64);
        body.extend_from_slice(chunk);
    }
    Ok(chunk.is_some())
}

/// A body read that failed, its origin error counted.
fn body_failed(metrics: &Metrics, e: &pingora::Error) -> FetchError {
    metrics.count_origin_error(OriginError::of_proxy_error(e));
    transport("origin body", e)
}

/// Reads the second part of a split fetch on its own task, passing each
/// chunk to the client and to the returned receiver (the store's side,
/// which holds them until the first part is written). A failure reaches
/// both; a client gone is no failure.
pub(super) fn stream_second(
    ctx: Ctx<'_>,
    mut session: HttpSession,
    peer: HttpPeer,
    len: u64,
    client: mpsc::UnboundedSender<Result<Bytes, FetchError>>,
) -> Chunks {
    let (store, held) = mpsc::unbounded_channel();
    let (connector, metrics) = (ctx.connector, ctx.metrics.clone());
    tokio::spawn(async move {
        let mut got = 0u64;
        let res = loop {
            if client.is_closed() && store.is_closed() {
                return;
            }
            match next_chunk(&mut session, &metrics).await {
                Ok(Some(chunk)) => {
                    got += chunk.len() as u64;
                    if got > len {
                        break Err(failed("origin sent more than the slice"));
                    }
                    let _ = client.send(Ok(chunk.clone()));
                    let _ = store.send(Ok(chunk));
                }
                Ok(None) if got == len => break Ok(()),
                Ok(None) => break Err(failed(format!("origin sent {got} of {len} slice bytes"))),
                Err(e) => break Err(e),
            }
        };
        match res {
            Ok(()) => {
                if session.response_done() {
                    connector.release_http_session(session, &peer, None).await;
                }
            }
            Err(e) => {
                let _ = client.send(Err(e.clone()));
                let _ = store.send(Err(e));
            }
        }
    });
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_range: Option<&str>) -> ResponseHeader {
        let mut resp = ResponseHeader::build(206, None).unwrap();
        if let Some(v) = content_range {
            resp.insert_header("content-range", v).unwrap();
        }
        resp
    }

    #[test]
    fn only_a_span_from_byte_zero_within_the_length_is_taken() {
        // (Content-Range, the (E, T) taken)
        type Case = (Option<&'static str>, Option<(u64, u64)>);
        let cases: &[Case] = &[
            (Some("bytes 0-2999/3000"), Some((2999, 3000))),
            (Some("bytes 0-65535/65536"), Some((65535, 65536))),
            (Some("bytes 0-65535/65537"), Some((65535, 65537))),
            (Some("bytes 0-0/1"), Some((0, 1))),
            // Shorter than asked although the object is longer: a span.
            (Some("bytes 0-99/3000"), Some((99, 3000))),
            (Some("bytes 1-2999/3000"), None),
            (Some("bytes 0-2999/*"), None),
            (Some("bytes */3000"), None),
            (Some("bytes 0-3000/3000"), None),
            (Some("bytes 0-2999"), None),
            (Some("bytes -0-2999/3000"), None),
            (Some("bytes 0-+2999/3000"), None),
            (Some("items 0-2999/3000"), None),
            (Some("garbage"), None),
            (None, None),
        ];
        for (header, want) in cases {
            assert_eq!(span_from_zero(&answer(*header)), *want, "{header:?}");
        }
    }
}
