//! Answers the node writes itself, whole: the header, then the body unless
//! the request is a HEAD. A failed write is the client's side.

use bytes::Bytes;
use pingora::prelude::*;
use pingora_http::ResponseHeader;

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
