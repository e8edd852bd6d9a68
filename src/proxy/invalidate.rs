//! What a request with another method than GET or HEAD changes in the
//! cache (RFC 9111 4.4): such requests go to a plain HTTP origin uncached
//! (`origin.methods`), and a non-error answer (2xx, 3xx) to an unsafe one
//! (POST, PUT, DELETE, PATCH, ...) removes what is stored for its target
//! and for the same-host URIs its `Location` and `Content-Location` name,
//! here and, in a PoP, on the other members and the shields (a `PURGE`
//! hop, as an admin purge without a fleet sends).

use http::header::{CONTENT_LOCATION, LOCATION};
use pingora::http::{RequestHeader, ResponseHeader};

use super::Edge;
use super::admit::Admitted;
use crate::auth::extract;
use crate::cluster::purge::{Purge, spread};
use crate::request::method::MethodSet;
use crate::request::{host, path, query};

/// The canonical path and query of a `Location` or `Content-Location`
/// value that stays on this host (`/path`, or `scheme://host/path` with the
/// request's `Host`), as the cache keys them; `None` for another host or a
/// reference that does not read.
fn same_host_target(
    value: &str,
    this_host: Option<&str>,
    keep: impl Fn(&str) -> bool,
) -> Option<(String, String)> {
    let rest = if value.starts_with('/') && !value.starts_with("//") {
        value
    } else {
        let (_, after_scheme) = value.split_once("://")?;
        let slash = after_scheme.find('/').unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(slash);
        if !this_host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
            return None;
        }
        if rest.is_empty() { "/" } else { rest }
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let (raw_path, raw_query) = rest.split_once('?').unwrap_or((rest, ""));
    let canonical = path::canonicalize(raw_path).ok()?;
    let pairs = query::parse(raw_query).ok()?;
    Some((canonical, query::canonical(&pairs, keep)))
}

/// After the origin answered `req` (passed on with another method than
/// GET or HEAD): removes what the answer makes stale.
pub async fn after(edge: &Edge, req: &RequestHeader, resp: &ResponseHeader, admitted: &Admitted) {
    let Some(engine) = edge.cache else {
        return;
    };
    if MethodSet::SAFE.contains(req.method.as_str()) || !(200..400).contains(&resp.status.as_u16())
    {
        return;
    }
    let this_host = host::of(req);
    let sources = edge.verifier.token_sources();
    let keep = |name: &str| {
        !extract::is_token_param(sources, name) && edge.origin.config.forwards_query(name)
    };
    let mut targets = vec![(admitted.path.clone(), admitted.query.clone())];
    for name in [LOCATION, CONTENT_LOCATION] {
        let named = resp.headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(target) = named.and_then(|v| same_host_target(v, this_host, keep))
            && !targets.contains(&target)
        {
            targets.push(target);
        }
    }
    for (path, query) in targets {
        let purge = Purge::One(path, query);
        let purged = purge.apply(engine).await;
        edge.metrics.cache_purged.inc_by(purged as u64);
        let Some(cluster) = &edge.cluster else {
            continue;
        };
        let mut to = cluster.others();
        to.extend(edge.origin.parents.iter().flat_map(|p| p.members().addrs()));
        let spread = spread(cluster, &to, &purge).await;
        if !spread.failed.is_empty() {
            tracing::warn!(
                target = %purge.target(),
                failed = ?spread.failed,
                "an invalidation did not reach every node"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_on_this_host_names_a_stored_object() {
        let keep = |name: &str| name != "jwt";
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("/v/a.mp4", Some(("/v/a.mp4", ""))),
            ("/v/a.mp4?x=1&jwt=t#frag", Some(("/v/a.mp4", "x=1"))),
            // A path the gate refuses names nothing stored.
            ("/v/./b/../a.mp4", None),
            ("http://node.example:8080/v/a.mp4", Some(("/v/a.mp4", ""))),
            (
                "https://NODE.example:8080/v/a.mp4?b=2&a=1",
                Some(("/v/a.mp4", "a=1&b=2")),
            ),
            ("http://node.example:8080", Some(("/", ""))),
            ("http://other.example/v/a.mp4", None),
            ("http://node.example/v/a.mp4", None),
            ("//node.example:8080/v/a.mp4", None),
            ("a.mp4", None),
            ("", None),
        ];
        for (value, want) in cases {
            let got = same_host_target(value, Some("node.example:8080"), keep);
            let want = want.map(|(p, q)| (p.to_owned(), q.to_owned()));
            assert_eq!(got, want, "{value}");
        }
        assert_eq!(
            same_host_target("http://node.example:8080/a", None, keep),
            None
        );
    }
}
