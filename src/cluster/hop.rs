//! The request one node sends another (the PoP member that owns a key, or
//! a shield): the canonical target without the client's token, the client's
//! fields the other node's answer may depend on, the fleet's `CDN-Loop`
//! entry appended, and the signed marker that opens the target on the other
//! node's peer listener.

use std::net::IpAddr;
use std::time::SystemTime;

use pingora::http::RequestHeader;

use super::Cluster;
use super::{cdn_loop, marker};
use crate::origin::{TokenCarriers, copy_end_to_end, copy_forwarded};
use crate::request::host;

/// Which of the client's fields a hop carries: what the origin behind the
/// fleet may answer differently for.
#[derive(Debug, Clone, Copy)]
pub enum Carried<'a> {
    /// Ranges and conditionals: S3 answers nothing else differently.
    CacheFields,
    /// Every end-to-end field but the token's carriers, as the node
    /// passes them to a plain HTTP origin: its answers may vary (`Vary`)
    /// on any of them, and the owner keys its variants by them. `client`:
    /// the address this node was asked from, appended to
    /// `X-Forwarded-For`.
    EndToEnd {
        carriers: &'a TokenCarriers,
        client: Option<IpAddr>,
    },
}

/// Fields of a client's request a hop never carries: the hop is a GET or
/// HEAD without a body, and its `CDN-Loop` is written below.
const NOT_CARRIED: &[&str] = &["content-length", "expect", cdn_loop::HEADER];

/// `to_self` marks the hop to this node's own peer listener (a request
/// whose owner failed and whose next owner is this node): it does not name
/// this node in `CDN-Loop`, or it would be refused as a loop.
pub fn request(
    cluster: &Cluster,
    to_self: bool,
    carried: Carried<'_>,
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
    // An HTTP/1.1 request names its host: an HTTP/2 client's is its
    // `:authority`.
    if let Some(host) = host::of(prepared) {
        req.insert_header(http::header::HOST, host)
            .map_err(|e| format!("hop host: {e}"))?;
    }
    match carried {
        Carried::CacheFields => copy_forwarded(prepared, &mut req)?,
        Carried::EndToEnd { carriers, client } => {
            copy_end_to_end(carriers, prepared, &mut req, NOT_CARRIED, client)
                .map_err(|e| format!("hop {e}"))?
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::auth::settings::TokenSource;
    use crate::cluster::settings::ClusterConfig;

    fn cluster() -> Cluster {
        let me = "127.0.0.1:7001".parse().unwrap();
        Cluster::new(ClusterConfig {
            name: "fleet".into(),
            listen: me,
            peers: vec![me, "127.0.0.2:7001".parse().unwrap()],
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            health_check_interval: Duration::from_secs(1),
            down_for: Duration::from_secs(5),
            marker_ttl: Duration::from_secs(30),
            connect_timeout: Duration::from_millis(500),
            memory_copies: false,
        })
    }

    #[test]
    fn a_hop_names_the_host_an_http_2_client_asked() {
        let mut h2 = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
        h2.set_version(http::Version::HTTP_2);
        h2.set_uri("https://cdn.example:8443/v/a.mp4".parse().unwrap());
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let carried = Carried::CacheFields;
        let req = request(&cluster(), false, carried, "/v/a.mp4", "", &h2, now).unwrap();
        assert_eq!(req.headers.get("host").unwrap(), "cdn.example:8443");
        assert_eq!(req.uri, "/v/a.mp4");
    }

    /// The client's request as the proxy prepared it.
    fn prepared() -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/v/a.mp4?jwt=x.y.z", None).unwrap();
        for (name, value) in [
            ("host", "cdn.example"),
            ("range", "bytes=0-9"),
            ("if-none-match", "\"a\""),
            ("accept-language", "fr"),
            ("user-agent", "hls.js"),
            ("cookie", "jwt=x.y.z; theme=dark"),
            ("authorization", "Bearer x.y.z"),
            ("accept-encoding", "gzip"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("content-length", "0"),
            ("expect", "100-continue"),
            ("cdn-loop", "other-cdn"),
            (marker::HEADER, "forged"),
        ] {
            req.append_header(name, value).unwrap();
        }
        req
    }

    #[test]
    fn a_hop_carries_what_the_origin_kind_may_answer_differently_for() {
        let cluster = cluster();
        let carriers = TokenCarriers::of(&[
            TokenSource::Query("jwt".into()),
            TokenSource::Header("authorization".into()),
            TokenSource::Cookie("jwt".into()),
        ]);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cases: &[(Carried, &[(&str, &str)])] = &[
            (
                Carried::CacheFields,
                &[
                    ("host", "cdn.example"),
                    ("range", "bytes=0-9"),
                    ("if-none-match", "\"a\""),
                ],
            ),
            (
                Carried::EndToEnd {
                    carriers: &carriers,
                    client: Some("192.0.2.7".parse().unwrap()),
                },
                &[
                    ("host", "cdn.example"),
                    ("range", "bytes=0-9"),
                    ("if-none-match", "\"a\""),
                    ("accept-language", "fr"),
                    ("user-agent", "hls.js"),
                    ("cookie", "theme=dark"),
                    ("x-forwarded-for", "192.0.2.7"),
                ],
            ),
        ];
        for (carried, want) in cases {
            let (path, query) = ("/v/a.mp4", "");
            let req = request(&cluster, false, *carried, path, query, &prepared(), now);
            let req = req.unwrap();
            assert_eq!(req.uri, "/v/a.mp4", "{carried:?}");
            let mut got: Vec<(&str, &str)> = req
                .headers
                .iter()
                .filter(|(n, _)| *n != cdn_loop::HEADER && *n != marker::HEADER)
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            got.sort_unstable();
            let mut want = want.to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "{carried:?}");
            // The client's CDN-Loop once, then this fleet's own entry.
            let loops: Vec<&str> = req
                .headers
                .get_all(cdn_loop::HEADER)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(
                loops,
                ["other-cdn", cluster.loop_entry.as_str()],
                "{carried:?}"
            );
            // Only the node's own marker, never the client's.
            let markers: Vec<_> = req.headers.get_all(marker::HEADER).iter().collect();
            assert_eq!(markers.len(), 1, "{carried:?}");
            assert_ne!(markers[0], "forged", "{carried:?}");
        }
    }
}
