//! One URI of a manifest: whether it stays on this host, whether it already
//! carries a token, and where the token goes.
//!
//! Works on the URI as the manifest means it (XML references already
//! decoded); it never re-encodes what is there, it only inserts
//! `?param=value` or `&param=value` at the end of the query, before any
//! fragment. So a DASH template (`seg-$Number%05d$.m4s`, `$$`) comes out
//! as it went in, with the token after it.

use crate::manifest::Token;
use crate::request::{decode_escape, push_encoded};

/// A token ready to be inserted into many URIs of one manifest.
pub(super) struct Propagation<'a> {
    /// `?param=value`, both percent-encoded (only unreserved bytes and
    /// `%XX` remain, so the pair needs no XML or HLS escaping).
    with_question: String,
    /// `&param=value`, and the same with the `&` escaped for XML.
    with_ampersand: String,
    with_ampersand_xml: String,
    param: &'a str,
    known_params: &'a [&'a str],
    /// The request's `Host`; `None` when absent or not a plain `host[:port]`.
    host: Option<Authority<'a>>,
}

/// Where the token goes in one URI: the separator then the pair, inserted
/// at byte `at` (the end of the query, or of the path when there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Insertion {
    pub at: usize,
    pub separator: Separator,
    /// Whether the URI is a relative reference (to a path), so it stays on
    /// this host only if its base does; otherwise it names this host.
    pub relative: bool,
}

/// What goes between a URI and the token pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Separator {
    /// `?`: no query yet.
    Question,
    /// `&`: after the last parameter.
    Ampersand,
    /// Nothing: the query is empty or ends with `&`.
    Nothing,
}

/// Where a URI leads, as far as the manifest alone tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// A relative reference without authority (`seg.ts`, `/a/seg.ts`,
    /// `?x`): on the host of its base.
    Relative,
    /// An absolute (`https://`) or network-path (`//`) reference to this host.
    ThisHost,
    /// Another host, another scheme (`data:`, `skd:`), user info, or a
    /// control character or backslash, which browsers' URL parsers may read
    /// as a `/` and so as another host.
    Elsewhere,
}

impl<'a> Propagation<'a> {
    pub fn new(token: &Token<'a>, this_host: Option<&'a str>) -> Self {
        let mut with_question =
            String::with_capacity(3 * (token.param.len() + token.value.len()) + 2);
        with_question.push('?');
        push_encoded(&mut with_question, token.param.as_bytes());
        with_question.push('=');
        push_encoded(&mut with_question, token.value.as_bytes());
        let pair = &with_question[1..];
        Propagation {
            with_ampersand: format!("&{pair}"),
            with_ampersand_xml: format!("&amp;{pair}"),
            with_question,
            param: token.param,
            known_params: token.known_params,
            host: this_host.and_then(Authority::parse),
        }
    }

    /// The text to insert: `separator` and the encoded `param=value`, with
    /// an `&` written `&amp;` for XML.
    pub fn addition(&self, separator: Separator, xml: bool) -> &str {
        match (separator, xml) {
            (Separator::Question, _) => &self.with_question,
            (Separator::Ampersand, false) => &self.with_ampersand,
            (Separator::Ampersand, true) => &self.with_ampersand_xml,
            (Separator::Nothing, _) => &self.with_question[1..],
        }
    }

    /// Where the token goes in `uri`, or `None` when `uri` is left alone:
    /// empty, [`Place::Elsewhere`], or already carrying a token.
    pub fn insertion(&self, uri: &str) -> Option<Insertion> {
        if uri.is_empty() {
            return None;
        }
        let shape = Shape::of(uri)?;
        let relative = match self.place_of(uri, &shape) {
            Place::Relative => true,
            Place::ThisHost => false,
            Place::Elsewhere => return None,
        };
        let separator = match shape.question {
            None => Separator::Question,
            Some(question) => {
                let query = &uri[question + 1..shape.fragment];
                if self.has_token(query) {
                    return None;
                }
                if query.is_empty() || query.ends_with('&') {
                    Separator::Nothing
                } else {
                    Separator::Ampersand
                }
            }
        };
        Some(Insertion {
            at: shape.fragment,
            separator,
            relative,
        })
    }

    /// Where `uri` leads; the empty reference is [`Place::Relative`].
    pub fn place(&self, uri: &str) -> Place {
        match Shape::of(uri) {
            Some(shape) => self.place_of(uri, &shape),
            None => Place::Elsewhere,
        }
    }

    fn place_of(&self, uri: &str, shape: &Shape) -> Place {
        let (rest, scheme) = if let Some(rest) = uri.strip_prefix("//") {
            (rest, Scheme::Inherited)
        } else {
            let Some(colon) = shape.scheme_end else {
                return Place::Relative;
            };
            let name = &uri[..colon];
            let scheme = if name.eq_ignore_ascii_case("http") {
                Scheme::Http
            } else if name.eq_ignore_ascii_case("https") {
                Scheme::Https
            } else {
                return Place::Elsewhere;
            };
            match uri[colon + 1..].strip_prefix("//") {
                Some(rest) => (rest, scheme),
                // `http:seg.ts`: legal but odd; left alone rather than guessed.
                None => return Place::Elsewhere,
            }
        };
        if self.same_authority(rest, scheme) {
            Place::ThisHost
        } else {
            Place::Elsewhere
        }
    }

    /// Whether the authority at the start of `rest` (up to `/`, `?`, `#`)
    /// is this host, default ports for `scheme` ignored on both sides.
    fn same_authority(&self, rest: &str, scheme: Scheme) -> bool {
        let Some(host) = &self.host else {
            return false;
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let Some(theirs) = Authority::parse(&rest[..end]) else {
            return false;
        };
        theirs.host.eq_ignore_ascii_case(host.host)
            && scheme.effective(theirs.port) == scheme.effective(host.port)
    }

    /// Whether `query` has a token parameter (any of the known names or
    /// `param`, compared percent-decoded) with a non-empty value. An empty
    /// value counts as absent, as it does when the node reads a request.
    fn has_token(&self, query: &str) -> bool {
        query.split('&').any(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() => {
                let is_token = |n: &str| n == self.param || self.known_params.contains(&n);
                if name.contains(['%', '+']) {
                    decode_name(name).is_some_and(|n| is_token(&n))
                } else {
                    is_token(name)
                }
            }
            _ => false,
        })
    }
}

/// What one pass over a URI finds. Manifests hold thousands of short
/// URIs, so this is the one walk over each.
struct Shape {
    /// The `:` ending a scheme (RFC 3986 §3.1), if the URI starts with one.
    scheme_end: Option<usize>,
    /// The first `?` before the fragment.
    question: Option<usize>,
    /// The `#` starting the fragment, or the length.
    fragment: usize,
}

/// How [`Shape::of`] reads each byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A letter, digit, `+`, `-` or `.`: may be part of a scheme.
    SchemeChar,
    /// Any other byte allowed in a URI here (`/`, `%`, `$`, non-ASCII, ...).
    Other,
    /// A control character or a backslash.
    Refused,
    Colon,
    Question,
    Hash,
}

const CLASSES: [Class; 256] = {
    let mut table = [Class::Other; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.' => Class::SchemeChar,
            0..=0x1f | 0x7f | b'\\' => Class::Refused,
            b':' => Class::Colon,
            b'?' => Class::Question,
            b'#' => Class::Hash,
            _ => Class::Other,
        };
        b += 1;
    }
    table
};

impl Shape {
    /// `None` when the URI holds a control character or a backslash.
    fn of(uri: &str) -> Option<Shape> {
        let bytes = uri.as_bytes();
        let mut in_scheme = bytes.first().is_some_and(u8::is_ascii_alphabetic);
        let mut shape = Shape {
            scheme_end: None,
            question: None,
            fragment: bytes.len(),
        };
        for (i, &b) in bytes.iter().enumerate() {
            let class = CLASSES[usize::from(b)];
            if class == Class::SchemeChar {
                continue;
            }
            match class {
                Class::Refused => return None,
                Class::Colon if in_scheme => shape.scheme_end = Some(i),
                Class::Question if shape.question.is_none() && shape.fragment == bytes.len() => {
                    shape.question = Some(i);
                }
                Class::Hash if shape.fragment == bytes.len() => shape.fragment = i,
                _ => {}
            }
            in_scheme = false;
        }
        Some(shape)
    }
}

/// Splits `text` into leading whitespace, the URI, trailing whitespace
/// (space, tab, CR, LF), so the whitespace around a URI is kept as it is.
pub(super) fn split_whitespace(text: &str) -> (&str, &str, &str) {
    let bytes = text.as_bytes();
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    (&text[..start], &text[start..end], &text[end..])
}

/// A query parameter name decoded as the node decodes request queries: `%XX`
/// escapes and `+` for a space; an invalid escape stays literal.
fn decode_name(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match decode_escape(bytes, i) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The scheme a URI's authority is reached with; a network-path reference
/// (`//host/...`) inherits the manifest's, which the rewriter does not know.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    Http,
    Https,
    Inherited,
}

impl Scheme {
    /// The port as compared: `None` for the scheme's default (80 or 443;
    /// either one for an inherited scheme).
    fn effective(self, port: Option<u16>) -> Option<u16> {
        match (self, port) {
            (Scheme::Http, Some(80)) | (Scheme::Https, Some(443)) => None,
            (Scheme::Inherited, Some(80 | 443)) => None,
            (_, port) => port,
        }
    }
}

/// `host[:port]` of an authority or a `Host` header. One with user info
/// (`user@host`) or an invalid port does not parse, so it never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Authority<'a> {
    host: &'a str,
    /// `None` when absent or empty (`host:`), which both mean the default.
    port: Option<u16>,
}

impl<'a> Authority<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        if text.contains('@') {
            return None;
        }
        let (host, port) = if text.starts_with('[') {
            let close = text.find(']')?;
            let (host, rest) = text.split_at(close + 1);
            match rest {
                "" => (host, ""),
                _ => (host, rest.strip_prefix(':')?),
            }
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, port),
                None => (text, ""),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            "" => None,
            digits if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse().ok()?)
            }
            _ => return None,
        };
        Some(Authority { host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, expected host and port)
    type AuthorityCase = (&'static str, Option<(&'static str, Option<u16>)>);

    const AUTHORITIES: &[AuthorityCase] = &[
        ("cdn.example", Some(("cdn.example", None))),
        ("cdn.example:8443", Some(("cdn.example", Some(8443)))),
        ("cdn.example:", Some(("cdn.example", None))),
        ("cdn.example:0443", Some(("cdn.example", Some(443)))),
        ("[::1]:8080", Some(("[::1]", Some(8080)))),
        ("[::1]", Some(("[::1]", None))),
        ("[::1]x", None),
        ("[::1", None),
        ("user@cdn.example", None),
        ("cdn.example:99999", None),
        ("cdn.example:123456", None),
        ("cdn.example:http", None),
        ("a:1:2", None),
        ("", None),
        (":80", None),
    ];

    #[test]
    fn authority_parse() {
        for (text, want) in AUTHORITIES {
            let got = Authority::parse(text).map(|a| (a.host, a.port));
            assert_eq!(got, *want, "authority {text:?}");
        }
    }

    const SCHEMES: &[(&str, Option<&str>)] = &[
        ("http://x/", Some("http")),
        ("HTTPS://x/", Some("HTTPS")),
        ("skd://key", Some("skd")),
        ("data:text/plain,x", Some("data")),
        ("a+b.c-d:x", Some("a+b.c-d")),
        ("seg-1.ts", None),
        ("path/with:colon", None),
        ("1abc:x", None),
        (":x", None),
        ("a?b:c", None),
        ("", None),
    ];

    #[test]
    fn scheme_cases() {
        for (uri, want) in SCHEMES {
            let shape = Shape::of(uri).expect("no control characters");
            assert_eq!(shape.scheme_end.map(|e| &uri[..e]), *want, "uri {uri:?}");
        }
    }

    /// (URI, first `?` before the fragment, fragment start)
    const SHAPES: &[(&str, Option<usize>, usize)] = &[
        ("a", None, 1),
        ("a?b", Some(1), 3),
        ("a?b?c#d?e#f", Some(1), 5),
        ("a#b?c", None, 1),
        ("?#", Some(0), 1),
        ("", None, 0),
    ];

    #[test]
    fn shape_cases() {
        for (uri, question, fragment) in SHAPES {
            let shape = Shape::of(uri).expect("no control characters");
            assert_eq!(
                (shape.question, shape.fragment),
                (*question, *fragment),
                "uri {uri:?}"
            );
        }
        for bad in ["a\\b", "a\tb", "a\nb", "\u{7f}", "#\\"] {
            assert!(Shape::of(bad).is_none(), "uri {bad:?}");
        }
    }

    const NAMES: &[(&str, Option<&str>)] = &[
        ("j%77t", Some("jwt")),
        ("a+b", Some("a b")),
        ("%zz", Some("%zz")),
        ("%4", Some("%4")),
        ("%", Some("%")),
        ("%ff", None),
        ("%C3%A9", Some("é")),
    ];

    #[test]
    fn decode_name_cases() {
        for (raw, want) in NAMES {
            assert_eq!(decode_name(raw).as_deref(), *want, "name {raw:?}");
        }
    }

    const SPLITS: &[(&str, (&str, &str, &str))] = &[
        ("", ("", "", "")),
        ("a", ("", "a", "")),
        ("  a b\t", ("  ", "a b", "\t")),
        ("\r\n a \r\n", ("\r\n ", "a", " \r\n")),
        (" \n ", (" \n ", "", "")),
    ];

    #[test]
    fn split_whitespace_cases() {
        for (text, want) in SPLITS {
            assert_eq!(split_whitespace(text), *want, "text {text:?}");
        }
    }
}
