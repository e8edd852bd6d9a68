//! What the node adds to the answers it sends: the fields every answer of
//! the cache carries, and answers written whole (the header, then the body
//! unless the request is a HEAD; a failed write is the client's side).

use bytes::Bytes;
use pingora::prelude::*;
use pingora_http::ResponseHeader;

use crate::auth::Renewed;
use crate::cache::status;

/// The cache status under `status_header` (`cache.status_header`, when
/// set), then a renewed token: the same fields in the same order on every
/// path an answer takes. The name is the engine's, which lives as long as
/// the process: a `'static` name goes into the header without a copy.
pub fn add_cache_fields(
    header: &mut ResponseHeader,
    status_header: Option<&'static str>,
    label: &'static str,
    renewal: Option<&Renewed>,
) -> Result<()> {
    if let Some(name) = status_header {
        header.insert_header(name, status::header_value(label))?;
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
