//! A small XML scanner, enough to find and rewrite URIs in an MPD safely.
//!
//! It walks the document once and hands out its markup with byte ranges,
//! checking what a rewrite depends on: tags are balanced with matching
//! names, attribute values are quoted and hold no `<`, there is one root
//! element and no text outside it, and every reference is one of the five
//! predefined entities or a character reference to an XML character.
//!
//! A document type declaration is refused outright ([`Unchanged::Doctype`])
//! whatever it declares, so no DTD-declared entity, internal or external,
//! is ever expanded; an undeclared named reference is
//! [`Unchanged::UnknownEntity`]. Namespaces are not resolved: names come
//! with their prefix and callers compare local names.

use std::borrow::Cow;
use std::ops::Range;

use super::Unchanged;

/// One piece of markup or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// Character data, as written (references checked, not decoded).
    Text(&'a str),
    /// The content of a CDATA section.
    CData(&'a str),
    /// A start tag or an empty-element tag (`empty`). `attributes` is the
    /// checked text between the name and the closing `>` or `/>`; it starts
    /// at byte `attributes_at` of the document.
    Start {
        name: &'a str,
        attributes: &'a str,
        attributes_at: usize,
        empty: bool,
    },
    /// An end tag.
    End { name: &'a str },
    /// A comment, a processing instruction or the XML declaration.
    Other,
}

/// Hands out the tokens of a document in order.
pub(super) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    /// Names of the open elements, outermost first.
    open: Vec<&'a str>,
    root_seen: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner over `text` from byte `start` (after a byte order mark).
    pub fn new(text: &'a str, start: usize) -> Self {
        Scanner {
            text,
            pos: start,
            open: Vec::new(),
            root_seen: false,
        }
    }

    /// The next token and its byte range in the document; `Ok(None)` at the
    /// end of a complete document.
    pub fn next_token(&mut self) -> Result<Option<(Token<'a>, Range<usize>)>, Unchanged> {
        let start = self.pos;
        let rest = &self.text[start..];
        if rest.is_empty() {
            let complete = self.root_seen && self.open.is_empty();
            return if complete {
                Ok(None)
            } else {
                Err(Unchanged::BadXml)
            };
        }
        let (token, len) = if !rest.starts_with('<') {
            let (len, markup) = scan_to(rest, b'<');
            let raw = &rest[..len];
            if self.open.is_empty() {
                if !raw.bytes().all(is_space) {
                    return Err(Unchanged::BadXml);
                }
            } else if markup {
                check_references(raw)?;
            }
            (Token::Text(raw), len)
        } else if let Some(body) = rest.strip_prefix("<?") {
            (Token::Other, 4 + find(body, "?>")?)
        } else if let Some(body) = rest.strip_prefix("<!--") {
            (Token::Other, 7 + find(body, "-->")?)
        } else if let Some(body) = rest.strip_prefix("<![CDATA[") {
            if self.open.is_empty() {
                return Err(Unchanged::BadXml);
            }
            let end = find(body, "]]>")?;
            (Token::CData(&body[..end]), 12 + end)
        } else if rest.starts_with("<!DOCTYPE") {
            return Err(Unchanged::Doctype);
        } else if rest.starts_with("<!") {
            return Err(Unchanged::BadXml);
        } else if let Some(body) = rest.strip_prefix("</") {
            self.end_tag(body)?
        } else {
            self.start_tag(rest, start)?
        };
        self.pos = start + len;
        Ok(Some((token, start..start + len)))
    }

    /// `body` follows `</`.
    fn end_tag(&mut self, body: &'a str) -> Result<(Token<'a>, usize), Unchanged> {
        let name = &body[..name_len(body)];
        let after = skip_spaces(body, name.len());
        if body.as_bytes().get(after) != Some(&b'>') || self.open.pop() != Some(name) {
            return Err(Unchanged::BadXml);
        }
        Ok((Token::End { name }, 2 + after + 1))
    }

    /// `rest` starts with the `<` of a start tag at byte `at` of the document.
    fn start_tag(&mut self, rest: &'a str, at: usize) -> Result<(Token<'a>, usize), Unchanged> {
        let bytes = rest.as_bytes();
        let name_end = 1 + name_len(&rest[1..]);
        if name_end == 1 || (self.open.is_empty() && self.root_seen) {
            return Err(Unchanged::BadXml);
        }
        let name = &rest[1..name_end];
        let mut i = name_end;
        let (attributes_end, empty, len) = loop {
            let spaced = skip_spaces(rest, i);
            match bytes.get(spaced) {
                Some(b'>') => break (i, false, spaced + 1),
                Some(b'/') if bytes.get(spaced + 1) == Some(&b'>') => break (i, true, spaced + 2),
                Some(_) if spaced > i => i = attribute_end(rest, spaced)?,
                _ => return Err(Unchanged::BadXml),
            }
        };
        self.root_seen = true;
        if !empty {
            self.open.push(name);
        }
        let token = Token::Start {
            name,
            attributes: &rest[name_end..attributes_end],
            attributes_at: at + name_end,
            empty,
        };
        Ok((token, len))
    }
}

/// Checks the attribute at byte `at` of `tag` (`name = "value"`) and
/// returns the byte after it.
fn attribute_end(tag: &str, at: usize) -> Result<usize, Unchanged> {
    let bytes = tag.as_bytes();
    let name_end = at + name_len(&tag[at..]);
    let equals = skip_spaces(tag, name_end);
    if name_end == at || bytes.get(equals) != Some(&b'=') {
        return Err(Unchanged::BadXml);
    }
    let open = skip_spaces(tag, equals + 1);
    let quote = match bytes.get(open) {
        Some(&quote @ (b'"' | b'\'')) => quote,
        _ => return Err(Unchanged::BadXml),
    };
    let value_start = open + 1;
    let (len, markup) = scan_to(&tag[value_start..], quote);
    let value = &tag[value_start..value_start + len];
    if value_start + len == tag.len() {
        return Err(Unchanged::BadXml);
    }
    if markup {
        if value.contains('<') {
            return Err(Unchanged::BadXml);
        }
        check_references(value)?;
    }
    Ok(value_start + len + 1)
}

/// One attribute of a checked start tag: its name and raw value, the
/// value starting at byte `value_at` of the attribute text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Attribute<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub value_at: usize,
}

/// The attributes of a start tag's checked attribute text
/// ([`Token::Start::attributes`]).
pub(super) fn attributes(text: &str) -> impl Iterator<Item = Attribute<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let start = skip_spaces(text, pos);
        let name = &text[start..start + name_len(&text[start..])];
        let open = skip_spaces(text, skip_spaces(text, start + name.len()) + 1);
        let quote = *text.as_bytes().get(open)?;
        let value_at = open + 1;
        let (len, _) = scan_to(text.get(value_at..)?, quote);
        let value = text.get(value_at..value_at + len)?;
        pos = value_at + value.len() + 1;
        (!name.is_empty()).then_some(Attribute {
            name,
            value,
            value_at,
        })
    })
}

/// How [`decode`] treats literal whitespace (XML 1.0 §2.11 and §3.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// An attribute value: references decoded, a literal tab, line feed,
    /// carriage return or CRLF becomes one space.
    Attribute,
    /// Character data: references decoded, CRLF and CR become a line feed.
    Text,
    /// A CDATA section: no references; CRLF and CR become a line feed.
    CData,
}

/// The value an XML reader sees for `raw`; borrowed when nothing changes.
pub(super) fn decode(raw: &str, mode: Mode) -> Result<Cow<'_, str>, Unchanged> {
    let special = |b: u8| match mode {
        Mode::Attribute => matches!(b, b'&' | b'\t' | b'\n' | b'\r'),
        Mode::Text => matches!(b, b'&' | b'\r'),
        Mode::CData => b == b'\r',
    };
    let bytes = raw.as_bytes();
    let Some(first) = bytes.iter().position(|&b| special(b)) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    let (mut copied, mut i) = (0, first);
    while i < bytes.len() {
        if !special(bytes[i]) {
            i += 1;
            continue;
        }
        out.push_str(&raw[copied..i]);
        match bytes[i] {
            b'&' => {
                let (c, len) = reference(&raw[i..])?;
                out.push(c);
                i += len;
            }
            b'\r' => {
                out.push(if mode == Mode::Attribute { ' ' } else { '\n' });
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
            }
            _ => {
                out.push(' ');
                i += 1;
            }
        }
        copied = i;
    }
    out.push_str(&raw[copied..]);
    Ok(Cow::Owned(out))
}

/// Appends `text` escaped so that an XML reader reads it back as it is: as
/// an attribute value (either quote) or as character data.
pub(super) fn push_escaped(out: &mut String, text: &str, attribute: bool) {
    let mut copied = 0;
    for (i, c) in text.char_indices() {
        let escaped = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '\r' => "&#13;",
            '"' if attribute => "&quot;",
            '\'' if attribute => "&apos;",
            '\t' if attribute => "&#9;",
            '\n' if attribute => "&#10;",
            _ => continue,
        };
        out.push_str(&text[copied..i]);
        out.push_str(escaped);
        copied = i + 1;
    }
    out.push_str(&text[copied..]);
}

/// Checks every reference in `raw` (text or an attribute value).
fn check_references(raw: &str) -> Result<(), Unchanged> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        let (_, len) = reference(&rest[amp..])?;
        rest = &rest[amp + len..];
    }
    Ok(())
}

/// The character the reference at the start of `raw` (`&name;`, `&#N;`,
/// `&#xH;`) stands for, and the reference's length.
fn reference(raw: &str) -> Result<(char, usize), Unchanged> {
    let body = &raw[1..];
    let len = body
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'#' | b'_' | b'-' | b'.')))
        .unwrap_or(body.len());
    if len == 0 || body.as_bytes().get(len) != Some(&b';') {
        return Err(Unchanged::BadXml);
    }
    let c = match &body[..len] {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        name => match name.strip_prefix('#') {
            Some(number) => character(number)?,
            None => return Err(Unchanged::UnknownEntity),
        },
    };
    Ok((c, len + 2))
}

/// The character of a character reference's number (`N` or `xH`).
fn character(number: &str) -> Result<char, Unchanged> {
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty() {
        return Err(Unchanged::BadXml);
    }
    let mut value: u32 = 0;
    for d in digits.chars() {
        let d = d.to_digit(radix).ok_or(Unchanged::BadXml)?;
        value = value
            .checked_mul(radix)
            .and_then(|v| v.checked_add(d))
            .ok_or(Unchanged::BadXml)?;
    }
    match value {
        0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF => {
            char::from_u32(value).ok_or(Unchanged::BadXml)
        }
        _ => Err(Unchanged::BadXml),
    }
}

/// The length of `text` up to the first `stop` byte (or all of it), and
/// whether an `&` or a `<` comes before: one walk for both, as most values
/// and texts are short and hold neither.
fn scan_to(text: &str, stop: u8) -> (usize, bool) {
    let mut markup = false;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if b == stop {
            return (i, markup);
        }
        markup |= b == b'&' || b == b'<';
    }
    (text.len(), markup)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_spaces(text: &str, mut i: usize) -> usize {
    let bytes = text.as_bytes();
    while i < bytes.len() && is_space(bytes[i]) {
        i += 1;
    }
    i
}

/// The length of the name at the start of `text`: up to whitespace or a
/// delimiter. Lenient about which characters a name may hold; the
/// delimiters are ASCII, so the length is a character boundary.
fn name_len(text: &str) -> usize {
    text.bytes()
        .position(|b| is_space(b) || matches!(b, b'/' | b'>' | b'=' | b'<' | b'&' | b'"' | b'\''))
        .unwrap_or(text.len())
}

/// The offset of `pattern` in `text`; a missing end of markup is bad XML.
fn find(text: &str, pattern: &str) -> Result<usize, Unchanged> {
    text.find(pattern).ok_or(Unchanged::BadXml)
}
