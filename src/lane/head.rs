//! A request head as the lane reads it: the bytes up to the empty line,
//! parsed with the parser Pingora's HTTP/1 session uses (`httparse`), into
//! the `RequestHeader` Pingora would build. Only the plainest heads are the
//! lane's ([`parse`]): anything that needs more of HTTP/1 than "a GET or
//! HEAD without a body on a kept-alive HTTP/1.1 connection" goes to
//! Pingora's session, which reads the same bytes again.

use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING, UPGRADE};
use pingora_http::RequestHeader;

/// Fields a head may have for the lane to take it; more goes to Pingora.
const MAX_FIELDS: usize = 64;

/// What the bytes read so far are. Lives on the stack for one request:
/// the head is not boxed, which would cost an allocation per request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// The start of a head: more bytes are needed.
    Partial,
    /// A head the lane does not answer, or bytes the parser does not read
    /// as a head: Pingora's session reads them again and decides (it
    /// answers 400, or repairs a request line with unescaped bytes).
    Pingora,
    /// A head the lane answers.
    Lane(Head),
}

/// A head the lane may answer.
#[derive(Debug)]
pub struct Head {
    pub req: RequestHeader,
    /// The client asked to close the connection after the answer.
    pub close: bool,
}

/// Reads `buf`, the bytes read since the last answer. The lane takes a
/// head that is all of `buf` (nothing pipelined after it) and asks for no
/// more of HTTP/1 than it does: HTTP/1.1, GET or HEAD, no request body
/// (`Content-Length`, `Transfer-Encoding`), no `Expect` or `Upgrade`, a
/// `Connection` field that says at most `keep-alive` or `close`, an
/// origin-form target, one `Host`, and what Pingora checks of them.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(buf) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(n)) if n == buf.len() => match build(&parsed) {
            Some(head) => Parsed::Lane(head),
            None => Parsed::Pingora,
        },
        _ => Parsed::Pingora,
    }
}

fn build(parsed: &httparse::Request<'_, '_>) -> Option<Head> {
    let method = parsed.method?;
    if !matches!(method, "GET" | "HEAD") || parsed.version != Some(1) {
        return None;
    }
    let path = parsed.path?;
    if !path.starts_with('/') {
        return None;
    }
    let mut req = RequestHeader::build(method, path.as_bytes(), Some(parsed.headers.len())).ok()?;
    req.set_version(http::Version::HTTP_11);
    let mut close = false;
    for field in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(field.value).ok()?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == EXPECT || name == UPGRADE
        {
            return None;
        }
        if name == CONNECTION {
            match value.as_bytes() {
                v if v.eq_ignore_ascii_case(b"keep-alive") => {}
                v if v.eq_ignore_ascii_case(b"close") => close = true,
                _ => return None,
            }
        }
        req.append_header(name, value).ok()?;
    }
    if req.headers.get_all(HOST).iter().count() != 1 {
        return None;
    }
    pingora_core::protocols::http::authority::validate_request_authority(&req).ok()?;
    Some(Head { req, close })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_plainest_heads_are_the_lanes() {
        // (head, taken, close)
        let cases: &[(&str, bool, bool)] = &[
            (
                "GET /v/a.mp4?jwt=t HTTP/1.1\r\nHost: h\r\n\r\n",
                true,
                false,
            ),
            (
                "HEAD /v/a.mp4 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
                true,
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n",
                true,
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                true,
                true,
            ),
            // Another connection option, a body, an upgrade: Pingora's.
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close, te\r\n\r\n",
                false,
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
                false,
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
                false,
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
                false,
                false,
            ),
            // Other methods and versions.
            ("POST /a HTTP/1.1\r\nHost: h\r\n\r\n", false, false),
            ("OPTIONS /a HTTP/1.1\r\nHost: h\r\n\r\n", false, false),
            ("GET /a HTTP/1.0\r\nHost: h\r\n\r\n", false, false),
            // No Host, two, one Pingora refuses; an absolute or asterisk target.
            ("GET /a HTTP/1.1\r\n\r\n", false, false),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n",
                false,
                false,
            ),
            ("GET /a HTTP/1.1\r\nHost: u@h\r\n\r\n", false, false),
            ("GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n", false, false),
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", false, false),
            // Not one whole head: a part, a second request after it.
            ("GET /a HTTP/1.1\r\nHost: h\r\n", false, false),
            (
                "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
                false,
                false,
            ),
        ];
        for (head, taken, close) in cases {
            match parse(head.as_bytes()) {
                Parsed::Lane(got) => {
                    assert!(*taken, "{head:?}");
                    assert_eq!(got.close, *close, "{head:?}");
                }
                other => assert!(!*taken, "{head:?}: {other:?}"),
            }
        }
    }

    fn lane(head: &str) -> RequestHeader {
        match parse(head.as_bytes()) {
            Parsed::Lane(head) => head.req,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn a_taken_head_is_the_request_pingora_builds() {
        let head = "GET /v/a%20b.mp4?jwt=t&x=1 HTTP/1.1\r\nHost: cdn.example\r\nX-Two: 1\r\nx-two: 2\r\n\r\n";
        let got = lane(head);
        assert_eq!(got.method, http::Method::GET);
        assert_eq!(got.version, http::Version::HTTP_11);
        assert_eq!(got.raw_path(), b"/v/a%20b.mp4?jwt=t&x=1");
        assert_eq!(got.uri.path(), "/v/a%20b.mp4");
        assert_eq!(got.uri.query(), Some("jwt=t&x=1"));
        assert_eq!(got.headers.get(HOST).unwrap(), "cdn.example");
        let two: Vec<_> = got.headers.get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
    }

    #[test]
    fn a_part_waits_for_more_and_what_the_parser_refuses_is_pingoras() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET /a HTTP/1.1\r\nHo", "partial"),
            (b"", "partial"),
            (b"GET /a b c\r\n\r\n", "pingora"),
            (b"\x16\x03\x01\x02\x00", "pingora"),
        ];
        for (buf, want) in cases {
            let got = match parse(buf) {
                Parsed::Partial => "partial",
                Parsed::Pingora => "pingora",
                Parsed::Lane(_) => "lane",
            };
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(buf));
        }
    }
}
