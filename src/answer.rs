//! What the node writes to clients itself: answers written whole (the
//! header, then the body unless the request is a HEAD; a failed write is
//! the client's side), its error answers, and the fields every answer of the
//! cache carries. Used by every route that answers without the origin's
//! response passing through Pingora (refusals, memory hits, the slicer).

use bytes::Bytes;
use pingora::prelude::*;
use pingora_http::ResponseHeader;

use crate::auth::Renewed;
use crate::cache::status::CacheStatus;
use crate::refusal::Refusal;

/// The cache status under `status_header` (`cache.status_header`, when
/// set), then a renewed token: the same fields in the same order on every
/// path an answer takes. The name is the engine's, which lives as long as
/// the process: a `'static` name goes into the header without a copy.
pub fn add_cache_fields(
    header: &mut ResponseHeader,
    status_header: Option<&'static str>,
    status: CacheStatus,
    renewal: Option<&Renewed>,
) -> Result<()> {
    if let Some(name) = status_header {
        header.insert_header(name, status.header_value())?;
    }
    if let Some(renewed) = renewal {
        header.append_header(renewed.name.clone(), renewed.value.as_str())?;
    }
    Ok(())
}

pub async fn send_whole(
    session: &mut Session,
    header: ResponseHeader,
    body: Bytes,
    head: bool,
) -> Result<()> {
    session
        .write_response_header(Box::new(header), head)
        .await
        .map_err(|e| e.into_down())?;
    if !head {
        session
            .write_response_body(Some(body), true)
            .await
            .map_err(|e| e.into_down())?;
    }
    Ok(())
}

/// Sends one of our own error answers, unless a response is already under
/// way.
pub async fn send_refusal(session: &mut Session, refusal: Refusal) -> Result<()> {
    if session.response_written().is_some() {
        return Ok(());
    }
    let head = session.req_header().method == http::Method::HEAD;
    let body = Bytes::from_static(refusal.body().as_bytes());
    send_whole(session, refusal.header(), body, head).await
}
