//! RFC 8586 `CDN-Loop`: every hop between the fleet's nodes appends the
//! fleet's name; a request that already passed too many of them is a loop
//! (a misconfigured parent, nodes with different views of the ring) and is
//! answered 508 instead of being sent round again.

use http::HeaderMap;

pub const HEADER: &str = "cdn-loop";
/// A clean request passes at most three of the fleet's nodes: the one the
/// client reached, the owner in the PoP, the shield.
pub const MAX_OURS: usize = 3;

/// How many `cdn-info` entries of all `CDN-Loop` fields name `cdn_id`.
pub fn count(headers: &HeaderMap, cdn_id: &str) -> usize {
    headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|info| {
            let id = info.split(';').next().unwrap_or("").trim();
            id == cdn_id
        })
        .count()
}

/// The entry a node appends: the fleet's name, and the node itself as a
/// parameter so that a request coming back to it is seen at once.
pub fn entry(cdn_id: &str, node: Option<std::net::SocketAddr>) -> String {
    match node {
        Some(node) => format!("{cdn_id}; node=\"{node}\""),
        None => cdn_id.to_string(),
    }
}

/// Whether one of the entries is `node`'s own.
fn passed(headers: &HeaderMap, cdn_id: &str, node: std::net::SocketAddr) -> bool {
    let mine = format!("\"{node}\"");
    headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|info| {
            let mut parts = info.split(';').map(str::trim);
            parts.next() == Some(cdn_id)
                && parts.any(|p| p.strip_prefix("node=") == Some(mine.as_str()))
        })
}

/// Whether a request has passed more of our nodes than a clean one does,
/// or has passed `node` (this node) already.
pub fn is_loop(headers: &HeaderMap, cdn_id: &str, node: std::net::SocketAddr) -> bool {
    // A client's request has none: nothing to read or format.
    if !headers.contains_key(HEADER) {
        return false;
    }
    count(headers, cdn_id) > MAX_OURS || passed(headers, cdn_id, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_entries_are_counted_among_others() {
        let me: std::net::SocketAddr = "127.0.0.2:8090".parse().unwrap();
        let cases: &[(&[&str], usize, bool)] = &[
            (&[], 0, false),
            (&["edu"], 1, false),
            (&["edu, edu"], 2, false),
            (&["other, edu; v=1", "edu"], 2, false),
            (&["edu-2, xedu, EDU"], 0, false),
            (&["  edu  ;a=b , other"], 1, false),
            (&["edu,edu,edu,edu"], 4, true),
            (&["edu; node=\"127.0.0.1:8090\""], 1, false),
            (&["edu; node=\"127.0.0.2:8090\""], 1, true),
            (&["other; node=\"127.0.0.2:8090\""], 0, false),
            (&["edu, edu;x=1; node=\"127.0.0.2:8090\""], 2, true),
        ];
        for (fields, want, looped) in cases {
            let mut h = HeaderMap::new();
            for f in *fields {
                h.append(HEADER, f.parse().unwrap());
            }
            assert_eq!(count(&h, "edu"), *want, "{fields:?}");
            assert_eq!(is_loop(&h, "edu", me), *looped, "{fields:?}");
        }
        assert_eq!(entry("edu", Some(me)), "edu; node=\"127.0.0.2:8090\"");
    }
}
