//! The lane on HTTP/2: each stream's request, once Pingora's HTTP/2 layer
//! has read its head, is offered to the lane before the proxy's phases
//! run. A plain request that memory answers ([`crate::proxy::lane`]: a
//! fresh memory hit, a playlist given the token, or the gate's refusal of
//! such a request) is answered on its stream here, through the same HTTP/2
//! session Pingora would write it with (which adds `Date` and drops the
//! fields HTTP/2 has no place for, on either path); every other request
//! goes on to the proxy unchanged.
//!
//! What the lane saves here is the proxy's per-request work around the
//! answer (its session, phases and modules), not the HTTP/2 framing, which
//! both paths share.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::HttpSession;

use super::Lane;
use crate::proxy::Sent;
use crate::proxy::lane::{Answer, Body, Form, Head, Outcome};

impl Lane {
    /// Answers an HTTP/2 stream's request when the lane can: `true` when it
    /// did (or could not, and the stream is to be reset by dropping the
    /// session), `false` when the proxy serves it.
    ///
    /// The session is borrowed, and written through its HTTP/2 half
    /// directly: moving a session in and out, or awaiting the generic
    /// session's writes (whose futures are sized for HTTP/1's), cost more
    /// than the answer's own work on every stream.
    pub async fn answer_stream(&self, session: &mut ServerSession) -> bool {
        let ServerSession::H2(stream) = session else {
            return false;
        };
        if !plain_stream(stream) {
            return false;
        }
        let peer = stream.client_addr().cloned();
        let peer_ip = peer.as_ref().and_then(|a| a.as_inet()).map(|a| a.ip());
        let answer = match self
            .edge
            .lane_answer(stream.req_header(), peer_ip, Form::Http2, false)
            .await
        {
            Ok(Outcome::Answer(answer)) => answer,
            Ok(Outcome::Pass) => return false,
            // Never made for HTTP/2 (the lane forwards on HTTP/1 only): the
            // stream is reset rather than the token checked again.
            Ok(Outcome::Handed(_)) => {
                tracing::error!("the hit lane handed an HTTP/2 request on; stream reset");
                return true;
            }
            // Its token may have been checked: not handed on to be checked
            // again. Dropped unanswered, the stream is reset.
            Err(e) => {
                tracing::error!(error = %e, "the hit lane could not answer; HTTP/2 stream reset");
                return true;
            }
        };
        let Answer { head, body, ctx } = answer;
        let (Head::Fields(header), Body::Bytes(body)) = (head, body) else {
            tracing::error!(
                "the hit lane made an HTTP/1 header or a file body for an HTTP/2 stream; stream reset"
            );
            return true;
        };
        let status = header.status.as_u16();
        let bodiless = stream.req_header().method == http::Method::HEAD;
        let bytes = if bodiless { 0 } else { body.len() };
        // Counted before it is sent, as the cache lookup is.
        self.edge.metrics.ops.lane_answers.inc();
        let written = write(stream, header, body, bodiless).await;
        let sent = Sent {
            status,
            bytes: bytes as u64,
        };
        self.edge
            .finish(stream.req_header(), peer.as_ref(), sent, &ctx);
        if let Err(e) = written {
            tracing::debug!(error = %e, "a hit lane answer on HTTP/2 was not sent");
        }
        true
    }
}

/// Whether the stream's request has nothing after its head: no body to
/// read, and no field announcing one (such a request goes to the proxy, as
/// on HTTP/1).
fn plain_stream(stream: &HttpSession) -> bool {
    let req = stream.req_header();
    !req.headers.contains_key(CONTENT_LENGTH)
        && !req.headers.contains_key(TRANSFER_ENCODING)
        && stream.is_body_done()
}

/// Writes the header and the body, the stream ended with the last of them
/// (for a HEAD, the header).
async fn write(
    stream: &mut HttpSession,
    header: pingora_http::ResponseHeader,
    body: Bytes,
    bodiless: bool,
) -> pingora::Result<()> {
    let end = bodiless || body.is_empty();
    stream.write_response_header(Box::new(header), end)?;
    if !end {
        stream.write_body(body, true).await?;
    }
    Ok(())
}
