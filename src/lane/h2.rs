//! The lane on HTTP/2: each stream's request, once Pingora's HTTP/2 layer
//! has read its head, is offered to the lane before the proxy's phases
//! run. A plain request that memory answers ([`crate::proxy::lane`]: a
//! fresh memory hit, a playlist given the token, or the gate's refusal of
//! such a request), or that another node of the PoP owns (forwarded, the
//! owner's answer relayed: [`super::forward`]), is answered on its stream
//! here, through the same HTTP/2 session Pingora would write it with
//! (which adds `Date` and drops the fields HTTP/2 has no place for, on
//! either path); every other request goes on to the proxy unchanged.
//!
//! What the lane saves here is the proxy's per-request work around the
//! answer (its session, phases and modules), not the HTTP/2 framing, which
//! both paths share.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::HttpSession;

use super::Lane;
use super::forward::Relay;
use crate::proxy::Sent;
use crate::proxy::admit::Admitted;
use crate::proxy::lane::{Answer, Body, Form, Head, Outcome};

impl Lane {
    /// Answers an HTTP/2 stream's request when the lane can; else says
    /// how the proxy goes on with it.
    ///
    /// The session is borrowed, and written through its HTTP/2 half
    /// directly: moving a session in and out, or awaiting the generic
    /// session's writes (whose futures are sized for HTTP/1's), cost more
    /// than the answer's own work on every stream.
    pub async fn answer_stream(&self, session: &mut ServerSession) -> Offered {
        let ServerSession::H2(stream) = session else {
            return Offered::Pass;
        };
        if !plain_stream(stream) {
            return Offered::Pass;
        }
        let peer = stream.client_addr().cloned();
        let peer_ip = peer.as_ref().and_then(|a| a.as_inet()).map(|a| a.ip());
        let outcome = self
            .edge
            .lane_answer(stream.req_header(), peer_ip, Form::Http2, false)
            .await;
        let answer = match outcome {
            Outcome::Answer(answer) => answer,
            Outcome::Pass => return Offered::Pass,
            Outcome::Handed(admitted) => return Offered::Handed(admitted),
        };
        let Answer {
            head,
            body,
            mut ctx,
        } = answer;
        let Head::Fields(header) = head else {
            tracing::error!(
                "the hit lane made an HTTP/1 header for an HTTP/2 stream; stream reset"
            );
            return Offered::Answered;
        };
        let status = header.status.as_u16();
        let bodiless = stream.req_header().method == http::Method::HEAD;
        let bytes = if bodiless { 0 } else { body.len() };
        // Counted before it is sent, as the cache lookup is.
        self.edge.metrics.ops.lane_answers.inc();
        let written = match body {
            Body::Bytes(body) => write(stream, header, body, bodiless).await,
            Body::Relay(relay) => {
                let edge = &self.edge;
                let tap = &mut |chunk: Option<&Bytes>, end| edge.relayed(&mut ctx, chunk, end);
                relay_body(stream, header, relay, bodiless, tap).await
            }
            Body::File(_) => {
                tracing::error!("the hit lane made a file body for an HTTP/2 stream; stream reset");
                return Offered::Answered;
            }
        };
        let sent = Sent { status, bytes };
        self.edge
            .finish(stream.req_header(), peer.as_ref(), sent, &ctx);
        if let Err(e) = written {
            tracing::debug!(error = %e, "a hit lane answer on HTTP/2 was not sent");
        }
        Offered::Answered
    }
}

/// What the lane did with an HTTP/2 stream's request.
pub enum Offered {
    /// Answered (or the stream is to be reset by dropping the session).
    Answered,
    /// The proxy serves it: nothing checked, counted or changed.
    Pass,
    /// The proxy serves it with the lane's admission
    /// ([`crate::proxy::handed`]).
    Handed(Admitted),
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

/// Writes the header, then the owner's body as it comes (each chunk shown
/// to `tap` first), the stream ended with the last of it (for a HEAD, the
/// header).
async fn relay_body(
    stream: &mut HttpSession,
    header: pingora_http::ResponseHeader,
    mut relay: Relay,
    bodiless: bool,
    tap: &mut (dyn FnMut(Option<&Bytes>, bool) + Send),
) -> pingora::Result<()> {
    let empty = relay.len() == 0;
    stream.write_response_header(Box::new(header), bodiless || empty)?;
    if empty {
        tap(None, true);
    }
    while let Some(chunk) = relay.next().await.map_err(|e| {
        pingora::Error::because(
            pingora::ErrorType::ReadError,
            "relaying the owner's body",
            e,
        )
    })? {
        let end = relay.len() == 0;
        tap(Some(&chunk), end);
        if !bodiless {
            stream.write_body(chunk, end).await?;
        }
    }
    Ok(())
}
