//! What an S3 answer means for the client. S3 speaks to us, not to the
//! client: its error documents, request ids and `x-amz-*` headers stay at the
//! edge, and its refusals of our credentials are our failure (502), not the
//! client's.

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
        origin_error: Option<&'static str>,
    },
}

pub fn verdict(status: u16) -> Verdict {
    let bad = |kind| Verdict::Refuse {
        refusal: Refusal::BadGateway { kind },
        origin_error: Some(kind),
    };
    match status {
        200..=299 | 304 | 412 | 416 => Verdict::Pass,
        404 => Verdict::Refuse {
            refusal: Refusal::NotFound,
            origin_error: None,
        },
        300..=399 => bad("s3_redirect"),
        401 | 403 => bad("s3_denied"),
        500..=599 => bad("s3_server_error"),
        _ => bad("s3_rejected"),
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
}
