//! The request one node sends another (the PoP member that owns a key, or
//! a shield): the canonical target without the client's token, the fields
//! a cache needs (ranges and conditionals), the fleet's `CDN-Loop` entry
//! appended, and the signed marker that opens the target on the other
//! node's peer listener.

use std::time::SystemTime;

use pingora::http::RequestHeader;

use super::Cluster;
use super::{cdn_loop, marker};
use crate::origin::copy_forwarded;

/// `to_self` marks the hop to this node's own peer listener (a request
/// whose owner failed and whose next owner is this node): it does not name
/// this node in `CDN-Loop`, or it would be refused as a loop.
pub fn request(
    cluster: &Cluster,
    to_self: bool,
    canonical_path: &str,
    canonical_query: &str,
    prepared: &RequestHeader,
    now: SystemTime,
) -> Result<RequestHeader, String> {
    let target = if canonical_query.is_empty() {
        canonical_path.to_string()
    } else {
        format!("{canonical_path}?{canonical_query}")
    };
    let method = if prepared.method == http::Method::HEAD {
        "HEAD"
    } else {
        "GET"
    };
    let mut req = RequestHeader::build(method, target.as_bytes(), Some(12))
        .map_err(|e| format!("hop request: {e}"))?;
    let put = |req: &mut RequestHeader, name: &'static str, value: &str| {
        req.append_header(name, value)
            .map(|_| ())
            .map_err(|e| format!("hop header {name}: {e}"))
    };
    if let Some(host) = prepared.headers.get(http::header::HOST) {
        req.insert_header(http::header::HOST, host.clone())
            .map_err(|e| format!("hop host: {e}"))?;
    }
    copy_forwarded(prepared, &mut req)?;
    for value in prepared.headers.get_all(cdn_loop::HEADER) {
        req.append_header(cdn_loop::HEADER, value.clone())
            .map_err(|e| format!("hop header cdn-loop: {e}"))?;
    }
    let entry = match to_self {
        false => &cluster.loop_entry,
        true => &cluster.config.name,
    };
    put(&mut req, cdn_loop::HEADER, entry)?;
    let signed = cluster
        .marker
        .sign(method, &target, marker::unix_seconds(now));
    put(&mut req, marker::HEADER, &signed)?;
    Ok(req)
}
