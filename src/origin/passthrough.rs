//! The request to a plain HTTP origin (`origin.kind: http`): the client's
//! end-to-end fields pass through, as a shared cache passes them (RFC 9110
//! 7.6.1), without the hop-by-hop ones and without whatever carried the
//! client's token.

use std::net::IpAddr;

use http::HeaderName;
use pingora::http::RequestHeader;

use super::settings::OriginConfig;
use crate::auth::extract::bearer_token;
use crate::auth::settings::TokenSource;
use crate::cache::policy::targeted::SURROGATE_CAPABILITY;

/// Fields that belong to one connection (RFC 9110 7.6.1), or to the hop
/// between this node and the client.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    // One stored copy serves every client: ask for the identity encoding.
    "accept-encoding",
    crate::cluster::marker::HEADER,
];

/// The headers and cookies that may carry a client's token.
#[derive(Debug, Clone, Default)]
pub struct TokenCarriers {
    /// Lower-case field names.
    pub headers: Vec<String>,
    pub cookies: Vec<String>,
}

impl TokenCarriers {
    pub fn of(sources: &[TokenSource]) -> TokenCarriers {
        let mut carriers = TokenCarriers::default();
        for source in sources {
            match source {
                TokenSource::Header(name) => carriers.headers.push(name.to_ascii_lowercase()),
                TokenSource::Cookie(name) => carriers.cookies.push(name.clone()),
                TokenSource::Query(_) => {}
            }
        }
        carriers
    }

    /// Whether a request field may carry the client's token. `Authorization`
    /// carries one only in the `Bearer` scheme the node reads it from: other
    /// schemes (`Basic`, ...) are the origin's credentials and pass, as a
    /// shared cache passes them (RFC 9111 3.5 then decides what is stored).
    fn carries(&self, name: &HeaderName, value: &http::HeaderValue) -> bool {
        if !self.headers.iter().any(|h| h == name.as_str()) {
            return false;
        }
        if name != http::header::AUTHORIZATION {
            return true;
        }
        // Not text: the node could not tell, so it is not passed.
        value
            .to_str()
            .map_or(true, |text| bearer_token(text).is_some())
    }

    /// A `Cookie` field's pairs without the token cookies; `None` when
    /// nothing is left.
    fn strip_cookies(&self, value: &str) -> Option<String> {
        let kept: Vec<&str> = value
            .split(';')
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or("").trim();
                !pair.is_empty() && !self.cookies.iter().any(|c| c == name)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }
}

/// Fields of the origin's answer that belong to its connection to this
/// node (RFC 9110 7.6.1); Pingora frames the answer to the client itself.
const RESPONSE_HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authentication-info",
    "te",
    "trailer",
    "upgrade",
];

/// An answer from a plain HTTP origin or a node of the fleet without the
/// fields of that connection: the hop-by-hop ones and those its
/// `Connection` names (`Connection` itself is Pingora's to write).
pub fn strip_response(resp: &mut pingora_http::ResponseHeader) {
    let named = named_by_connection(&resp.headers);
    for name in RESPONSE_HOP_BY_HOP {
        resp.remove_header(*name);
    }
    for name in &named {
        // The framing fields stay Pingora's to read and write.
        if name != "content-length" && name != "transfer-encoding" {
            resp.remove_header(name.as_str());
        }
    }
}

/// The fields named in `Connection` are hop-by-hop too.
fn named_by_connection(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

pub fn request(
    config: &OriginConfig,
    carriers: &TokenCarriers,
    canonical_path: &str,
    canonical_query: &str,
    prepared: &RequestHeader,
    client: Option<IpAddr>,
) -> Result<RequestHeader, String> {
    let uri = config.object_uri(canonical_path);
    let target = if canonical_query.is_empty() {
        uri
    } else {
        format!("{uri}?{canonical_query}")
    };
    let method = prepared.method.as_str();
    let mut req = RequestHeader::build(method, target.as_bytes(), Some(prepared.headers.len() + 1))
        .map_err(|e| format!("origin request: {e}"))?;
    req.insert_header("host", config.host_header())
        .map_err(|e| format!("origin host header: {e}"))?;
    copy_end_to_end(carriers, prepared, &mut req, &[], client)?;
    // This node reads Surrogate-Control addressed to it (Edge Architecture
    // Specification 1.0): said the way surrogates say it, after any
    // surrogate before it.
    req.append_header("surrogate-capability", SURROGATE_CAPABILITY)
        .map_err(|e| format!("origin header surrogate-capability: {e}"))?;
    Ok(req)
}

/// Copies `prepared`'s end-to-end fields onto `req`: not the hop-by-hop
/// ones, those its `Connection` names, whatever carried the client's token
/// (a token cookie leaves the `Cookie` field, the site's cookies stay), nor
/// the fields named in `skip`; `X-Forwarded-For` with `client` (the
/// address this node was asked from) appended, as Varnish and CloudFront
/// append it.
pub fn copy_end_to_end(
    carriers: &TokenCarriers,
    prepared: &RequestHeader,
    req: &mut RequestHeader,
    skip: &[&str],
    client: Option<IpAddr>,
) -> Result<(), String> {
    let connection = named_by_connection(&prepared.headers);
    // HTTP/2 may carry the cookies in several fields; HTTP/1 takes them in
    // one, joined by "; " (RFC 9113 8.2.3).
    let mut cookies: Vec<u8> = Vec::new();
    let mut forwarded_for: Vec<u8> = Vec::new();
    for (name, value) in prepared.headers.iter() {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower)
            || skip.contains(&lower)
            || connection.iter().any(|c| c == lower)
            || carriers.carries(name, value)
        {
            continue;
        }
        if name.as_str() == FORWARDED_FOR {
            join(&mut forwarded_for, value.as_bytes(), b", ");
            continue;
        }
        if name == http::header::COOKIE {
            let kept = match value.to_str() {
                Ok(text) => carriers.strip_cookies(text).map(String::into_bytes),
                // Not text: passed as it is, unless a token may hide in it.
                Err(_) if carriers.cookies.is_empty() => Some(value.as_bytes().to_vec()),
                Err(_) => None,
            };
            if let Some(kept) = kept {
                join(&mut cookies, &kept, b"; ");
            }
            continue;
        }
        req.append_header(HeaderName::clone(name), value.clone())
            .map_err(|e| format!("header {name}: {e}"))?;
    }
    if let Some(client) = client {
        let client = client.to_canonical().to_string();
        join(&mut forwarded_for, client.as_bytes(), b", ");
    }
    for (name, value) in [("cookie", cookies), (FORWARDED_FOR, forwarded_for)] {
        if value.is_empty() {
            continue;
        }
        let value =
            http::HeaderValue::from_bytes(&value).map_err(|e| format!("header {name}: {e}"))?;
        req.append_header(name, value)
            .map_err(|e| format!("header {name}: {e}"))?;
    }
    Ok(())
}

/// The proxy chain: the client, then each proxy it passed, on one line.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// Appends an element (or a line of them) to a list, `separator` between.
fn join(list: &mut Vec<u8>, element: &[u8], separator: &[u8]) {
    if element.is_empty() {
        return;
    }
    if !list.is_empty() {
        list.extend_from_slice(separator);
    }
    list.extend_from_slice(element);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_loses_the_fields_of_its_connection() {
        let mut resp = pingora_http::ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("connection", "a, close"),
            ("connection", "content-length, B"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("content-length", "10"),
            ("cache-control", "max-age=60"),
        ] {
            resp.append_header(name, value).unwrap();
        }
        strip_response(&mut resp);
        let mut left: Vec<&str> = resp.headers.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        // Connection itself is Pingora's to write; the framing stays.
        assert_eq!(left, ["c", "cache-control", "connection", "content-length"]);
    }

    fn carriers() -> TokenCarriers {
        TokenCarriers::of(&[
            TokenSource::Query("jwt".into()),
            TokenSource::Header("authorization".into()),
            TokenSource::Cookie("session".into()),
        ])
    }

    #[test]
    fn end_to_end_fields_pass_and_token_carriers_do_not() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("accept", "video/*", Some("video/*")),
            ("user-agent", "hls.js", Some("hls.js")),
            ("range", "bytes=0-9", Some("bytes=0-9")),
            ("if-none-match", "\"a\"", Some("\"a\"")),
            ("authorization", "Bearer x.y.z", None),
            ("connection", "keep-alive, x-trace", None),
            ("x-trace", "1", None),
            ("keep-alive", "timeout=5", None),
            ("te", "trailers", None),
            ("accept-encoding", "gzip, br", None),
            ("upgrade", "h2c", None),
            ("proxy-authorization", "Basic x", None),
            ("cookie", "session=x.y.z; theme=dark", Some("theme=dark")),
            ("cdn-node-hop", "v1.1.AA", None),
        ];
        let mut prepared = RequestHeader::build("GET", b"/v/a.mp4?jwt=x", None).unwrap();
        for (name, value, _) in cases {
            prepared.append_header(*name, *value).unwrap();
        }
        let config = crate::origin::settings::tests_support::http_origin();
        let req = request(&config, &carriers(), "/v/a.mp4", "", &prepared, None).unwrap();
        assert_eq!(req.uri.to_string(), "/v/a.mp4");
        assert_eq!(req.headers.get("host").unwrap(), "web.example:8081");
        for (name, _, want) in cases {
            let got = req.headers.get(*name).map(|v| v.to_str().unwrap());
            assert_eq!(got, *want, "{name}");
        }
        // A surrogate before this node said what it reads; this node adds its own.
        prepared
            .append_header("surrogate-capability", "abc=\"ESI/1.0\"")
            .unwrap();
        let req = request(&config, &carriers(), "/v/a.mp4", "", &prepared, None).unwrap();
        let said = values_of(&req, "surrogate-capability");
        assert_eq!(said, ["abc=\"ESI/1.0\"", "cdn-node=\"Surrogate/1.0\""]);
    }

    #[test]
    fn authorization_passes_unless_it_is_the_bearer_token() {
        let config = crate::origin::settings::tests_support::http_origin();
        let cases: &[(&[u8], bool)] = &[
            (b"Bearer x.y.z", false),
            (b"bearer x.y.z", false),
            (b"BEARER\tx.y.z", false),
            (b"Basic QWxhZGRpbjpvcGVu", true),
            (b"FOO", true),
            (b"Digest username=\"a\", realm=\"b\"", true),
            // A scheme named like the token's, without a token, is not one.
            (b"Bearer", true),
            (b"caf\xe9 x", false),
        ];
        for (value, passes) in cases {
            let mut prepared = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
            let value = http::HeaderValue::from_bytes(value).unwrap();
            prepared
                .append_header("authorization", value.clone())
                .unwrap();
            let req = request(&config, &carriers(), "/v/a.mp4", "", &prepared, None).unwrap();
            let sent = req.headers.get("authorization");
            assert_eq!(sent == Some(&value), *passes, "{value:?}");
            assert_eq!(sent.is_some(), *passes, "{value:?}");
        }
        // A header named as a token's source carries it whatever it holds.
        let only_custom = TokenCarriers::of(&[TokenSource::Header("x-token".into())]);
        let mut prepared = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
        prepared.append_header("x-token", "Basic x").unwrap();
        prepared
            .append_header("authorization", "Bearer x.y.z")
            .unwrap();
        let req = request(&config, &only_custom, "/v/a.mp4", "", &prepared, None).unwrap();
        assert!(req.headers.get("x-token").is_none());
        // Authorization is no source here: the origin's, whatever its scheme.
        assert_eq!(values_of(&req, "authorization"), ["Bearer x.y.z"]);
    }

    /// The values of `name`'s lines in `req`, in order.
    fn values_of<'a>(req: &'a RequestHeader, name: &str) -> Vec<&'a str> {
        let values = req.headers.get_all(name).iter();
        values.map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn the_client_is_appended_to_the_proxy_chain_on_one_line() {
        let config = crate::origin::settings::tests_support::http_origin();
        let client: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let cases: &[(&[&str], Option<IpAddr>, Option<&str>)] = &[
            (&[], None, None),
            (&[], Some(client), Some("192.0.2.7")),
            (
                &["203.0.113.1"],
                Some(client),
                Some("203.0.113.1, 192.0.2.7"),
            ),
            (
                &["203.0.113.1, 10.0.0.1", "10.0.0.2"],
                Some("2001:db8::1".parse().unwrap()),
                Some("203.0.113.1, 10.0.0.1, 10.0.0.2, 2001:db8::1"),
            ),
            (&["a", "b"], None, Some("a, b")),
        ];
        for (lines, client, want) in cases {
            let mut prepared = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
            for line in *lines {
                prepared.append_header("x-forwarded-for", *line).unwrap();
            }
            let req = request(&config, &carriers(), "/v/a.mp4", "", &prepared, *client).unwrap();
            let got = values_of(&req, "x-forwarded-for");
            assert_eq!(
                got,
                want.iter().copied().collect::<Vec<_>>(),
                "{lines:?} {client:?}"
            );
        }
    }

    #[test]
    fn cookies_in_several_fields_go_on_in_one() {
        let mut prepared = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
        for value in ["a=1", "session=x.y.z", "b=2;  c=3"] {
            prepared.append_header("cookie", value).unwrap();
        }
        let config = crate::origin::settings::tests_support::http_origin();
        for (carriers, want) in [
            (carriers(), "a=1; b=2; c=3"),
            (TokenCarriers::default(), "a=1; session=x.y.z; b=2; c=3"),
        ] {
            let req = request(&config, &carriers, "/v/a.mp4", "", &prepared, None).unwrap();
            assert_eq!(values_of(&req, "cookie"), [want], "{carriers:?}");
        }
    }

    #[test]
    fn only_the_token_cookie_is_removed() {
        let c = carriers();
        let cases = [
            ("session=abc", None),
            ("a=1; session=abc; b=2", Some("a=1; b=2")),
            ("sessionx=1", Some("sessionx=1")),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(c.strip_cookies(value).as_deref(), want, "{value}");
        }
    }
}
