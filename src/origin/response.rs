//! What an S3 answer means for the client. S3 speaks to us, not to the
//! client: its error documents, request ids and `x-amz-*` headers stay at the
//! edge, and its refusals of our credentials are our failure (502), not the
//! client's.

use bytes::Bytes;
use pingora::http::ResponseHeader;

use super::OriginError;
use crate::refusal::Refusal;

/// The most of an origin error body kept to find S3's error code.
pub const ERROR_BODY_LIMIT: usize = 4096;

/// How the client's answer follows from the origin's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the response on (2xx, 304, 412, 416 ...).
    Pass,
    /// Answer with this refusal instead; `origin_error` is the metric label
    /// when the origin failed (not for a plain 404).
    Refuse {
        refusal: Refusal,
        origin_error: Option<OriginError>,
    },
}

pub fn verdict(status: u16) -> Verdict {
    let bad = |kind| Verdict::Refuse {
        refusal: Refusal::BadGateway(kind),
        origin_error: Some(kind),
    };
    match status {
        200..=299 | 304 | 412 | 416 => Verdict::Pass,
        404 => Verdict::Refuse {
            refusal: Refusal::NotFound,
            origin_error: None,
        },
        // Another node of the fleet saw a loop: so is this request.
        508 => Verdict::Refuse {
            refusal: Refusal::Loop,
            origin_error: None,
        },
        300..=399 => bad(OriginError::S3Redirect),
        401 | 403 => bad(OriginError::S3Denied),
        500..=599 => bad(OriginError::S3ServerError),
        _ => bad(OriginError::S3Rejected),
    }
}

/// Whether a response header from S3 is passed to clients. Drops S3's own
/// bookkeeping (`x-amz-request-id`, `x-amz-id-2`, server-side encryption
/// details ...) except user metadata.
pub fn passes_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.starts_with("x-amz-meta-") {
        return true;
    }
    !(name.starts_with("x-amz-") || name == "server" || name == "set-cookie")
}

/// Drops from an answer S3 sends every header that is not passed on.
pub fn strip_headers(resp: &mut ResponseHeader) {
    let drop: Vec<_> = resp
        .headers
        .keys()
        .filter(|n| !passes_header(n.as_str()))
        .cloned()
        .collect();
    for name in drop {
        resp.remove_header(&name);
    }
}

/// An origin error answer whose body is replaced by ours: S3's body is
/// kept (up to [`ERROR_BODY_LIMIT`]) only to find its error code.
pub struct ErrorBody {
    captured: Vec<u8>,
    /// Our body, `None` for a HEAD.
    replacement: Option<&'static str>,
}

impl ErrorBody {
    pub fn new(refusal: Refusal, head: bool) -> ErrorBody {
        ErrorBody {
            captured: Vec::new(),
            replacement: (!head).then(|| refusal.body()),
        }
    }

    /// Takes a chunk of S3's body out of `body`; at the end of the stream,
    /// puts our body there and returns S3's error code, if it had one.
    pub fn replace(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) -> Option<String> {
        if let Some(chunk) = body.take() {
            let room = ERROR_BODY_LIMIT.saturating_sub(self.captured.len());
            self.captured
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if !end_of_stream {
            return None;
        }
        *body = self.replacement.map(|b| Bytes::from_static(b.as_bytes()));
        error_code(&self.captured)
    }
}

/// The `<Code>` of an S3 error document, if it has a plausible one.
pub fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
    .then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: &[(u16, Option<u16>)] = &[
        (200, None),
        (206, None),
        (304, None),
        (412, None),
        (416, None),
        (404, Some(404)),
        (301, Some(502)),
        (400, Some(502)),
        (403, Some(502)),
        (500, Some(502)),
        (503, Some(502)),
        (508, Some(508)),
    ];

    #[test]
    fn statuses() {
        for (origin, client) in STATUSES {
            let got = match verdict(*origin) {
                Verdict::Pass => None,
                Verdict::Refuse { refusal, .. } => Some(refusal.status()),
            };
            assert_eq!(got, *client, "origin status {origin}");
        }
    }

    const HEADERS: &[(&str, bool)] = &[
        ("content-type", true),
        ("etag", true),
        ("last-modified", true),
        ("x-amz-meta-course", true),
        ("x-amz-request-id", false),
        ("X-Amz-Id-2", false),
        ("x-amz-server-side-encryption", false),
        ("server", false),
        ("set-cookie", false),
    ];

    #[test]
    fn headers() {
        for (name, pass) in HEADERS {
            assert_eq!(passes_header(name), *pass, "{name}");
        }
    }

    const BODIES: &[(&str, Option<&str>)] = &[
        (
            "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>",
            Some("SignatureDoesNotMatch"),
        ),
        ("<Error><Code>NoSuchKey</Code></Error>", Some("NoSuchKey")),
        ("<Error><Code></Code></Error>", None),
        ("<Error><Code><script></Code></Error>", None),
        ("<Error><Code>Unclosed", None),
        ("not xml", None),
    ];

    #[test]
    fn error_codes() {
        for (body, want) in BODIES {
            assert_eq!(error_code(body.as_bytes()).as_deref(), *want, "{body}");
        }
    }

    #[test]
    fn an_error_body_is_replaced_and_its_code_kept() {
        let refusal = Refusal::BadGateway(OriginError::S3Denied);
        let mut replaced = ErrorBody::new(refusal, false);
        let mut chunk = Some(Bytes::from_static(b"<Error><Code>AccessDen"));
        assert_eq!(replaced.replace(&mut chunk, false), None);
        assert_eq!(chunk, None, "S3's bytes never reach the client");
        let mut chunk = Some(Bytes::from_static(b"ied</Code></Error>"));
        assert_eq!(
            replaced.replace(&mut chunk, true).as_deref(),
            Some("AccessDenied")
        );
        assert_eq!(chunk.as_deref(), Some(refusal.body().as_bytes()));

        let mut head = ErrorBody::new(refusal, true);
        let mut chunk = Some(Bytes::from_static(b"<Error/>"));
        assert_eq!(head.replace(&mut chunk, true), None);
        assert_eq!(chunk, None, "a HEAD gets no body");
    }

    #[test]
    fn only_passing_headers_are_kept() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, _) in HEADERS {
            resp.append_header(name.to_string(), "v").unwrap();
        }
        strip_headers(&mut resp);
        for (name, pass) in HEADERS {
            assert_eq!(resp.headers.contains_key(*name), *pass, "{name}");
        }
    }
}
