//! The answers to a request head over the size limits: the request line
//! too long is 414 URI Too Long (RFC 9110 §15.5.15, as nginx answers it), a
//! field or the whole head too large is 431 Request Header Fields Too Large
//! (RFC 6585 §5). Short fixed bodies, never stored (`no-store`); over
//! HTTP/1 the connection is closed after the answer.

use pingora::http::ResponseHeader;

use super::watch::Over;

const URI_TOO_LONG: &str = "HTTP/1.1 414 URI Too Long\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 13\r\n\
    Cache-Control: no-store\r\n\
    Connection: close\r\n\
    \r\n\
    uri too long\n";

const FIELDS_TOO_LARGE: &str = "HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 32\r\n\
    Cache-Control: no-store\r\n\
    Connection: close\r\n\
    \r\n\
    request header fields too large\n";

fn whole(over: Over) -> &'static str {
    match over {
        Over::RequestLine => URI_TOO_LONG,
        Over::Field | Over::Head => FIELDS_TOO_LARGE,
    }
}

/// The status of the answer.
pub fn status(over: Over) -> u16 {
    match over {
        Over::RequestLine => 414,
        Over::Field | Over::Head => 431,
    }
}

/// The body of the answer.
pub fn body(over: Over) -> &'static str {
    let text = whole(over);
    text.find("\r\n\r\n").map_or("", |end| &text[end + 4..])
}

/// The HTTP/1.1 answer as written on the connection; for a HEAD request,
/// without its body.
pub fn http1(over: Over, head_request: bool) -> &'static [u8] {
    let text = whole(over);
    if head_request {
        &text.as_bytes()[..text.len() - body(over).len()]
    } else {
        text.as_bytes()
    }
}

/// The answer's header for an HTTP/2 stream (no `Connection`: one stream
/// is refused, the connection stays).
pub fn http2_header(over: Over) -> ResponseHeader {
    // A valid status and static values: building cannot fail.
    let mut h = ResponseHeader::build(status(over), Some(3)).expect("valid status");
    let _ = h.insert_header("content-type", "text/plain; charset=utf-8");
    let _ = h.insert_header("content-length", body(over).len().to_string());
    let _ = h.insert_header("cache-control", "no-store");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_whole_and_say_nothing_inside() {
        for over in [Over::RequestLine, Over::Field, Over::Head] {
            let text = std::str::from_utf8(http1(over, false)).unwrap();
            let (head, body_text) = text.split_once("\r\n\r\n").unwrap();
            assert_eq!(body_text, body(over));
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", status(over))));
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body_text.len())));
            assert!(head.contains("\r\nConnection: close"));
            assert!(head.contains("\r\nCache-Control: no-store"));
            let head_only = std::str::from_utf8(http1(over, true)).unwrap();
            assert_eq!(head_only, format!("{head}\r\n\r\n"));
            let h2 = http2_header(over);
            assert_eq!(h2.status.as_u16(), status(over));
            assert!(h2.headers.get("connection").is_none());
        }
        assert_eq!(body(Over::RequestLine), "uri too long\n");
        assert_eq!(body(Over::Head), "request header fields too large\n");
    }
}
