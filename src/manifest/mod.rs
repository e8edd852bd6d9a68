//! Token propagation into manifests: a stored HLS playlist or DASH MPD is
//! token-free, and every response for it carries the requesting student's
//! token in each URI that stays on this host, in the query parameter the
//! token came in, so that players fetch segments and renditions with it.
//!
//! [`kind`] tells which responses are manifests, [`rewrite`] rewrites one
//! body, [`rewrite_coded`] one stored gzip-coded ([`Coding`]); a [`Plan`]
//! does an HLS playlist's rewrite in two steps, so that a stored copy is
//! walked once for many requests. `uri` decides, for one URI, whether it
//! gets the token and where it goes; `hls` walks playlist lines and
//! attribute lists; `dash` walks the MPD's elements over `xml`, a small
//! scanner that refuses DTDs and never expands an entity beyond the five
//! predefined ones and character references.
//!
//! The rewriter is pure and bounded: one pass over the body, linear in its
//! length (the caller applies a size limit, which also bounds what a gzip
//! body may inflate to), no panics on any input.

mod coding;
mod dash;
mod hls;
mod plan;
mod uri;
mod xml;

#[cfg(test)]
mod tests;

use thiserror::Error;

pub use coding::Coding;
pub use plan::Plan;

/// The two manifest formats the node rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HLS playlist (RFC 8216), master or media.
    Hls,
    /// A DASH media presentation description (ISO/IEC 23009-1).
    Dash,
}

/// The token to propagate, as it came in the request.
#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    /// The query parameter name the token came in (percent-decoded), e.g. `jwt`.
    pub param: &'a str,
    /// The token itself (percent-decoded); it is written percent-encoded.
    pub value: &'a str,
    /// Every query parameter name that carries tokens. A URI whose query
    /// already has one of them (or `param`) with a non-empty value is left
    /// alone.
    pub known_params: &'a [&'a str],
}

/// Why a body is served as it is, untouched. Each has a stable label
/// ([`Unchanged::as_str`]) for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Unchanged {
    /// The token's parameter name or value is empty: nothing to propagate.
    #[error("no token to propagate")]
    NoToken,
    /// The body is not valid UTF-8 (both formats are UTF-8 text here).
    #[error("manifest is not UTF-8")]
    NotUtf8,
    /// An HLS body that does not start with `#EXTM3U`.
    #[error("not an HLS playlist (no #EXTM3U first line)")]
    NotAPlaylist,
    /// A well-formed XML document whose root element is not `MPD`.
    #[error("not a DASH MPD (root element is not MPD)")]
    NotAnMpd,
    /// An XML document with a document type declaration: refused whatever
    /// it declares, so no DTD-declared entity is ever expanded.
    #[error("MPD has a DOCTYPE")]
    Doctype,
    /// An entity reference other than `&amp;`, `&lt;`, `&gt;`, `&quot;`,
    /// `&apos;` and character references to XML characters.
    #[error("MPD has an unknown entity reference")]
    UnknownEntity,
    /// XML that does not parse: unterminated markup, mismatched tags, text
    /// outside the root element, a `<` in an attribute value, ...
    #[error("MPD is not well-formed XML")]
    BadXml,
    /// A `Content-Encoding` other than gzip (or gzip twice, or with
    /// another coding).
    #[error("manifest in a content coding other than gzip")]
    Coding,
    /// A body said to be gzip that does not inflate.
    #[error("manifest said to be gzip does not inflate")]
    BadCoding,
    /// A gzip body whose text is larger than `cache.manifest_max_size`.
    #[error("inflated manifest larger than manifest_max_size")]
    TooLargeDecoded,
}

impl Unchanged {
    /// A short stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Unchanged::NoToken => "no_token",
            Unchanged::NotUtf8 => "not_utf8",
            Unchanged::NotAPlaylist => "not_a_playlist",
            Unchanged::NotAnMpd => "not_an_mpd",
            Unchanged::Doctype => "doctype",
            Unchanged::UnknownEntity => "unknown_entity",
            Unchanged::BadXml => "bad_xml",
            Unchanged::Coding => "coding",
            Unchanged::BadCoding => "bad_coding",
            Unchanged::TooLargeDecoded => "too_large_decoded",
        }
    }

    /// The `reason` label of `cdn_node_manifests_as_stored_total` it
    /// counts under: `encoded` (a coding the node does not read, or a
    /// gzip body that does not inflate), `too_large` (inflated past the
    /// limit, as a body over it unread), else `unparsable`.
    pub fn reason(&self) -> &'static str {
        match self {
            Unchanged::Coding | Unchanged::BadCoding => "encoded",
            Unchanged::TooLargeDecoded => "too_large",
            _ => "unparsable",
        }
    }
}

/// HLS Content-Type essences (RFC 8216 §4 and the legacy ones players send).
const HLS_TYPES: [&str; 3] = [
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
];

/// The DASH MPD Content-Type essence.
const DASH_TYPE: &str = "application/dash+xml";

/// Which manifest a response is, if any: by its Content-Type first (any
/// casing, parameters such as `; charset=utf-8` ignored), then by the
/// extension of `path` (`.m3u8`, `.mpd`, any casing). A Content-Type that
/// names neither format (`binary/octet-stream` from S3, say) leaves the
/// decision to the path. `path` is the request path; a query or fragment
/// after it is ignored.
pub fn kind(path: &str, content_type: Option<&str>) -> Option<Kind> {
    if let Some(content_type) = content_type {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if HLS_TYPES.iter().any(|t| essence.eq_ignore_ascii_case(t)) {
            return Some(Kind::Hls);
        }
        if essence.eq_ignore_ascii_case(DASH_TYPE) {
            return Some(Kind::Dash);
        }
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    if ends_with_ignore_case(path, ".m3u8") {
        Some(Kind::Hls)
    } else if ends_with_ignore_case(path, ".mpd") {
        Some(Kind::Dash)
    } else {
        None
    }
}

/// Whether a stored or received answer is a manifest by its
/// `Content-Type` alone.
pub fn is_manifest_answer(header: &pingora_http::ResponseHeader) -> bool {
    let content_type = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    content_type.is_some_and(|t| kind("", Some(t)).is_some())
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// [`rewrite`] of a stored body in a content `coding`: its text (at most
/// `limit` bytes inflated) rewritten and coded again, so that the answer
/// keeps the stored `Content-Encoding`.
pub fn rewrite_coded(
    kind: Kind,
    coding: Coding,
    limit: usize,
    body: &[u8],
    token: &Token<'_>,
    this_host: Option<&str>,
) -> Result<Vec<u8>, Unchanged> {
    if coding == Coding::Identity {
        return rewrite(kind, body, token, this_host);
    }
    if token.param.is_empty() || token.value.is_empty() {
        return Err(Unchanged::NoToken);
    }
    let text = coding.decode(body, limit)?;
    coding.encode(rewrite(kind, &text, token, this_host)?)
}

/// Rewrites a whole manifest body so that every URI staying on this host
/// carries the token, and returns the new body (the caller sets
/// `Content-Length` from it). `this_host` is the request's `Host` (its port
/// included when it has one); without it only relative references (paths,
/// not `//host/...`) are rewritten.
///
/// Everything but the rewritten URIs is kept byte for byte: line endings,
/// a missing final newline, a byte order mark, comments, whitespace.
/// `Err` says why the body must be served untouched; it never panics, and
/// the work is linear in `body.len()`.
pub fn rewrite(
    kind: Kind,
    body: &[u8],
    token: &Token<'_>,
    this_host: Option<&str>,
) -> Result<Vec<u8>, Unchanged> {
    if token.param.is_empty() || token.value.is_empty() {
        return Err(Unchanged::NoToken);
    }
    match kind {
        Kind::Hls => {
            Plan::hls(body, token.param, token.known_params, this_host)?.apply(body, token)
        }
        Kind::Dash => {
            let text = std::str::from_utf8(body).map_err(|_| Unchanged::NotUtf8)?;
            let propagation = uri::Propagation::new(token, this_host);
            Ok(dash::rewrite(text, &propagation)?.into_bytes())
        }
    }
}
