//! The host a client's request was sent to, and whether it names it as
//! HTTP asks.

use pingora::http::RequestHeader;

/// The host a request was sent to: its `Host` field, or over HTTP/2 the
/// `:authority` that Pingora puts in its URI.
pub fn of(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// Whether a client's request names its host as HTTP asks (RFC 9112 3.2):
/// an HTTP/1.1 request in exactly one `Host` field, which must be there
/// (nginx and Varnish answer 400 without it); over HTTP/1.0 and HTTP/2
/// (`:authority`) it may be absent. One that is there reads as
/// `host[:port]`, without user information.
pub fn is_sound(req: &RequestHeader) -> bool {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => req.version != http::Version::HTTP_11,
        (Some(host), None) => reads_as_host_and_port(host.as_bytes()),
        (Some(_), Some(_)) => false,
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 3.2.2, 3.2.3): a non-empty reg-name
/// (unreserved, sub-delims and `%` escapes) or an IP-literal in brackets,
/// then digits after a colon. Read in place: this runs on every hit.
fn reads_as_host_and_port(value: &[u8]) -> bool {
    let port = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                let inside = &value[1..end];
                let literal = !inside.is_empty()
                    && inside
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                if !literal {
                    return false;
                }
                &value[end + 1..]
            }
            None => return false,
        },
        _ => {
            let colon = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            let (host, port) = value.split_at(colon);
            let reg_name = host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
            if host.is_empty() || !reg_name {
                return false;
            }
            port
        }
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_fields_or_the_uris() {
        let mut req = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
        assert_eq!(of(&req), None);
        req.set_uri("https://node.example:8443/v/a.mp4".parse().unwrap());
        assert_eq!(of(&req), Some("node.example:8443"));
        req.insert_header("host", "node.example").unwrap();
        assert_eq!(of(&req), Some("node.example"));
    }

    #[test]
    fn a_host_is_required_over_http_1_1_and_must_read_as_host_and_port() {
        const HTTP_10: http::Version = http::Version::HTTP_10;
        const HTTP_11: http::Version = http::Version::HTTP_11;
        const HTTP_2: http::Version = http::Version::HTTP_2;
        let cases: &[(http::Version, &[&[u8]], bool)] = &[
            (HTTP_11, &[b"cdn.example"], true),
            (HTTP_11, &[b"cdn.example:8080"], true),
            (HTTP_11, &[b"127.0.0.1:8080"], true),
            (HTTP_11, &[b"[::1]:8080"], true),
            (HTTP_11, &[], false),
            (HTTP_11, &[b""], false),
            (HTTP_11, &[b":8080"], false),
            (HTTP_11, &[b"a b"], false),
            (HTTP_11, &[b"cdn.example/v"], false),
            (HTTP_11, &[b"user@cdn.example"], false),
            (HTTP_11, &[b"a", b"a"], false),
            (HTTP_11, &[b"caf\xe9"], false),
            (HTTP_11, &[b"cdn.example:"], true),
            (HTTP_11, &[b"cdn.example:80:80"], false),
            (HTTP_11, &[b"cdn.example:8a"], false),
            (HTTP_11, &[b"[::1]"], true),
            (HTTP_11, &[b"[::1"], false),
            (HTTP_11, &[b"[]:80"], false),
            (HTTP_11, &[b"[::1]x"], false),
            (HTTP_11, &[b"[g::1]"], false),
            (HTTP_11, &[b"xn--caf-dma.example"], true),
            (HTTP_11, &[b"a%2Eb"], true),
            (HTTP_10, &[], true),
            (HTTP_10, &[b"a b"], false),
            (HTTP_2, &[], true),
            (HTTP_2, &[b"cdn.example"], true),
        ];
        for (version, hosts, sound) in cases {
            let mut req = RequestHeader::build("GET", b"/v/a.mp4", None).unwrap();
            req.set_version(*version);
            for host in *hosts {
                let value = http::HeaderValue::from_bytes(host).unwrap();
                req.append_header("host", value).unwrap();
            }
            assert_eq!(is_sound(&req), *sound, "{version:?} {hosts:?}");
        }
    }
}
