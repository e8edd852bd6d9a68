//! HLS playlists (RFC 8216): the token goes into every URI line and into the
//! `URI` attribute of the tags that carry one.
//!
//! Lines end with LF or CRLF (§4.1); each line's ending is copied as it is,
//! and so is a last line without one. Blank lines, comments and other tags
//! are copied untouched. A tag line whose attribute list does not parse is
//! copied untouched too: one odd tag does not stop the others.

use super::Unchanged;
use super::uri::{Propagation, split_whitespace};

/// The tags whose `URI="..."` attribute names something the player fetches
/// from the playlist's server. (`EXT-X-SESSION-DATA` points to a JSON file
/// some players fetch; on this host it needs the token like the rest.)
const URI_TAGS: [&str; 9] = [
    "EXT-X-KEY",
    "EXT-X-SESSION-KEY",
    "EXT-X-MAP",
    "EXT-X-MEDIA",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-RENDITION-REPORT",
    "EXT-X-SESSION-DATA",
];

const BOM: &str = "\u{feff}";

/// Rewrites a playlist. It must start with `#EXTM3U` (after an optional
/// UTF-8 byte order mark), trailing spaces on that line allowed.
pub(super) fn rewrite(text: &str, propagation: &Propagation<'_>) -> Result<String, Unchanged> {
    let body = text.strip_prefix(BOM).unwrap_or(text);
    let first = body.split('\n').next().unwrap_or("");
    let header = first
        .strip_prefix("#EXTM3U")
        .ok_or(Unchanged::NotAPlaylist)?;
    if !header.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return Err(Unchanged::NotAPlaylist);
    }

    // About every other line of a playlist holds a URI (`#EXTINF` or
    // `#EXT-X-STREAM-INF` and the URI line), each growing by the pair and
    // its separator; reserving that up front spares copies of a body that
    // grows several times over with a long token.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let growth = (lines / 2 + 1) * (propagation.pair().len() + 1);
    let mut out = String::with_capacity(text.len() + growth);
    out.push_str(&text[..text.len() - body.len()]);
    for line in body.split_inclusive('\n') {
        let (content, ending) = split_ending(line);
        if let Some(tag) = content.strip_prefix('#') {
            push_tag(&mut out, content, tag, propagation);
        } else {
            let (lead, uri, trail) = split_whitespace(content);
            // An indented tag or comment is no URI: copied as it is.
            let insertion = if uri.starts_with('#') {
                None
            } else {
                propagation.insertion(uri)
            };
            match insertion {
                Some(insertion) => {
                    out.push_str(lead);
                    propagation.push_with_token(&mut out, uri, insertion);
                    out.push_str(trail);
                }
                None => out.push_str(content),
            }
        }
        out.push_str(ending);
    }
    Ok(out)
}

/// Splits off the line terminator (`\n` or `\r\n`, or none on a last line).
fn split_ending(line: &str) -> (&str, &str) {
    let content = line
        .strip_suffix('\n')
        .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
    line.split_at(content.len())
}

/// Appends a `#` line, its `URI` attribute rewritten when the tag has one.
/// `tag` is the line after the `#`.
fn push_tag(out: &mut String, line: &str, tag: &str, propagation: &Propagation<'_>) {
    let rewritten = tag.split_once(':').and_then(|(name, attributes)| {
        if !URI_TAGS.contains(&name) {
            return None;
        }
        let (start, end) = uri_value(attributes)?;
        let uri = &attributes[start..end];
        let insertion = propagation.insertion(uri)?;
        // Offsets in `line`: the `#`, the name, the `:`.
        Some((name.len() + 2 + start, uri, insertion))
    });
    match rewritten {
        Some((start, uri, insertion)) => {
            out.push_str(&line[..start]);
            propagation.push_with_token(out, uri, insertion);
            out.push_str(&line[start + uri.len()..]);
        }
        None => out.push_str(line),
    }
}

/// The byte range of the `URI` attribute's value inside an attribute list
/// (between its quotes), or `None` when there is none or the list does not
/// parse up to it (what follows it is not looked at).
///
/// RFC 8216 §4.2: `NAME=value` pairs separated by commas; a quoted string
/// runs to the next `"` and may hold commas (`CODECS="avc1.4d401f,mp4a.40.2"`),
/// so the list is walked pair by pair and a `URI=` inside another
/// attribute's quoted value is never taken for the attribute. Spaces around
/// names and separators, which some packagers write, are tolerated.
fn uri_value(attributes: &str) -> Option<(usize, usize)> {
    let bytes = attributes.as_bytes();
    let skip_blanks = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    let mut i = 0;
    loop {
        i = skip_blanks(i);
        let name_start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b',' | b'"') {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return None;
        }
        let name = attributes[name_start..i].trim_end_matches([' ', '\t']);
        i = skip_blanks(i + 1);
        if bytes.get(i) == Some(&b'"') {
            let start = i + 1;
            let end = start + attributes[start..].find('"')?;
            if name == "URI" {
                return Some((start, end));
            }
            i = end + 1;
        } else {
            // An enumerated string, number or resolution; a URI is always quoted.
            if name == "URI" {
                return None;
            }
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
        }
        i = skip_blanks(i);
        match bytes.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI_VALUES: &[(&str, Option<&str>)] = &[
        (r#"METHOD=AES-128,URI="k.key",IV=0x1"#, Some("k.key")),
        (r#"URI="init.mp4""#, Some("init.mp4")),
        (r#"URI="""#, Some("")),
        (r#"NAME="x,URI=\"no\"",URI="yes""#, None),
        (r#"NAME="a,URI=b",URI="yes""#, Some("yes")),
        (r#"X-URI="no",URI="yes""#, Some("yes")),
        (
            r#"CODECS="avc1.4d401f,mp4a.40.2",URI="i.m3u8""#,
            Some("i.m3u8"),
        ),
        (r#"METHOD=NONE"#, None),
        (r#"URI=k.key"#, None),
        (r#"URI="unterminated"#, None),
        (r#"METHOD=AES-128, URI="spaced.key""#, Some("spaced.key")),
        (r#"METHOD=AES-128 ,URI = "spaced.key""#, Some("spaced.key")),
        (r#"garbage,URI="k""#, None),
        (r#"A="x"junk,URI="k""#, None),
        ("", None),
        (r#"A=1,"#, None),
    ];

    #[test]
    fn uri_value_cases() {
        for (attributes, want) in URI_VALUES {
            let got = uri_value(attributes).map(|(s, e)| &attributes[s..e]);
            assert_eq!(got, *want, "attributes {attributes:?}");
        }
    }

    #[test]
    fn split_ending_cases() {
        let cases = [
            ("a\n", ("a", "\n")),
            ("a\r\n", ("a", "\r\n")),
            ("a", ("a", "")),
            ("a\r", ("a\r", "")),
            ("\n", ("", "\n")),
            ("\r\r\n", ("\r", "\r\n")),
        ];
        for (line, want) in cases {
            assert_eq!(split_ending(line), want, "line {line:?}");
        }
    }
}
