//! Table-driven tests of the rewriter through its public API, on
//! real-world-shaped manifests; each case asserts the exact output.

mod dash;
mod generated;
mod hls;
mod hostile;
mod uri;

use super::*;

/// The request's `Host` in most cases.
const HOST: &str = "cdn.example";

/// A JWT-shaped token: base64url segments and dots, unchanged by encoding.
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzLTcifQ.c2ln";

/// The token parameters the node reads (its default sources).
const KNOWN: &[&str] = &["jwt", "token"];

fn token(value: &str) -> Token<'_> {
    Token {
        param: "jwt",
        value,
        known_params: KNOWN,
    }
}

/// Rewrites `body` with the token `JWT` in `jwt`, as the request to `host` asked.
fn run(kind: Kind, body: &str, host: Option<&str>) -> Result<String, Unchanged> {
    rewrite(kind, body.as_bytes(), &token(JWT), host)
        .map(|bytes| String::from_utf8(bytes).expect("the output of UTF-8 input is UTF-8"))
}

/// Replaces `{T}` in an expected output by `jwt=<JWT>`.
fn expect(template: &str) -> String {
    template.replace("{T}", &format!("jwt={JWT}"))
}

const KINDS: &[(&str, Option<&str>, Option<Kind>)] = &[
    ("/c/master.m3u8", None, Some(Kind::Hls)),
    ("/c/MASTER.M3U8", None, Some(Kind::Hls)),
    ("/c/index.mpd", None, Some(Kind::Dash)),
    ("/c/Index.MPD", None, Some(Kind::Dash)),
    ("/c/master.m3u8?jwt=x", None, Some(Kind::Hls)),
    ("/c/seg.ts", None, None),
    ("/c/m3u8", None, None),
    ("/c/a.m3u8/seg.ts", None, None),
    ("", None, None),
    ("/p", Some("application/vnd.apple.mpegurl"), Some(Kind::Hls)),
    ("/p", Some("Application/X-MpegURL"), Some(Kind::Hls)),
    ("/p", Some("audio/mpegurl; charset=utf-8"), Some(Kind::Hls)),
    (
        "/p",
        Some(" application/vnd.apple.mpegurl ;charset=UTF-8"),
        Some(Kind::Hls),
    ),
    ("/p", Some("application/dash+xml"), Some(Kind::Dash)),
    (
        "/p",
        Some("APPLICATION/DASH+XML;profiles=x"),
        Some(Kind::Dash),
    ),
    ("/p", Some("text/plain"), None),
    ("/p", Some("application/vnd.apple.mpegurl.audio"), None),
    ("/p", Some(""), None),
    // S3 often stores manifests as octet streams: the path decides.
    ("/c/a.m3u8", Some("binary/octet-stream"), Some(Kind::Hls)),
    (
        "/c/a.mpd",
        Some("application/octet-stream"),
        Some(Kind::Dash),
    ),
    // The Content-Type wins over the path when it names a format.
    ("/c/a.m3u8", Some("application/dash+xml"), Some(Kind::Dash)),
    ("/c/a.mpd", Some("application/x-mpegURL"), Some(Kind::Hls)),
];

#[test]
fn kind_by_path_and_content_type() {
    for (path, content_type, want) in KINDS {
        assert_eq!(
            kind(path, *content_type),
            *want,
            "path {path:?}, type {content_type:?}"
        );
    }
}

#[test]
fn unchanged_labels() {
    let all = [
        (Unchanged::NoToken, "no_token"),
        (Unchanged::NotUtf8, "not_utf8"),
        (Unchanged::NotAPlaylist, "not_a_playlist"),
        (Unchanged::NotAnMpd, "not_an_mpd"),
        (Unchanged::Doctype, "doctype"),
        (Unchanged::UnknownEntity, "unknown_entity"),
        (Unchanged::BadXml, "bad_xml"),
        (Unchanged::Coding, "coding"),
        (Unchanged::BadCoding, "bad_coding"),
        (Unchanged::TooLargeDecoded, "too_large_decoded"),
    ];
    for (reason, label) in all {
        assert_eq!(reason.as_str(), label);
    }
    let metric = [
        (Unchanged::NotUtf8, "unparsable"),
        (Unchanged::BadXml, "unparsable"),
        (Unchanged::Coding, "encoded"),
        (Unchanged::BadCoding, "encoded"),
        (Unchanged::TooLargeDecoded, "too_large"),
    ];
    for (reason, label) in metric {
        assert_eq!(reason.reason(), label, "{reason:?}");
    }
}

#[test]
fn a_gzip_body_is_rewritten_as_its_text_and_coded_again() {
    let hls = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\nseg-1.m4s\n";
    let mpd = "<MPD><Period><BaseURL>v/</BaseURL></Period></MPD>";
    for (kind, text) in [(Kind::Hls, hls), (Kind::Dash, mpd)] {
        let want = rewrite(kind, text.as_bytes(), &token(JWT), Some(HOST)).unwrap();
        let coded = Coding::Gzip.encode(text.as_bytes().to_vec()).unwrap();
        let got = rewrite_coded(kind, Coding::Gzip, 1 << 20, &coded, &token(JWT), Some(HOST));
        let got = Coding::Gzip
            .decode(&got.unwrap(), 1 << 20)
            .unwrap()
            .into_owned();
        assert_eq!(got, want, "{kind:?}");
        let plain = rewrite_coded(
            kind,
            Coding::Identity,
            0,
            text.as_bytes(),
            &token(JWT),
            None,
        );
        assert_eq!(plain, rewrite(kind, text.as_bytes(), &token(JWT), None));
        let cases = [
            (Coding::Other, 1 << 20, &coded[..], Unchanged::Coding),
            (
                Coding::Gzip,
                text.len() - 1,
                &coded[..],
                Unchanged::TooLargeDecoded,
            ),
            (Coding::Gzip, 1 << 20, text.as_bytes(), Unchanged::BadCoding),
        ];
        for (coding, limit, body, want) in cases {
            let got = rewrite_coded(kind, coding, limit, body, &token(JWT), Some(HOST));
            assert_eq!(got, Err(want), "{kind:?} {coding:?} within {limit}");
        }
        // Nothing is inflated for a request without a token.
        let none = rewrite_coded(kind, Coding::Gzip, 1 << 20, b"", &token(""), None);
        assert_eq!(none, Err(Unchanged::NoToken));
    }
}

#[test]
fn empty_token_is_no_token() {
    let body = b"#EXTM3U\nseg.ts\n";
    for (param, value) in [("", "x"), ("jwt", "")] {
        let token = Token {
            param,
            value,
            known_params: KNOWN,
        };
        for kind in [Kind::Hls, Kind::Dash] {
            assert_eq!(
                rewrite(kind, body, &token, Some(HOST)),
                Err(Unchanged::NoToken)
            );
        }
    }
}
