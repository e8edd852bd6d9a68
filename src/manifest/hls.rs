//! HLS playlists (RFC 8216): the token goes into every URI line and into the
//! `URI` attribute of the tags that carry one.
//!
//! Lines end with LF or CRLF (§4.1); each line's ending is copied as it is,
//! and so is a last line without one. Blank lines, comments and other tags
//! are copied untouched. A tag line whose attribute list does not parse is
//! copied untouched too: one odd tag does not stop the others.

use super::Unchanged;
use super::uri::{Insertion, Propagation, Separator, split_whitespace};

/// The tags (after `EXT-X-`) whose `URI="..."` attribute names something
/// the player fetches from the playlist's server. (`EXT-X-SESSION-DATA`
/// points to a JSON file some players fetch; on this host it needs the
/// token like the rest.)
const URI_TAGS: [&str; 9] = [
    "KEY",
    "SESSION-KEY",
    "MAP",
    "MEDIA",
    "I-FRAME-STREAM-INF",
    "PART",
    "PRELOAD-HINT",
    "RENDITION-REPORT",
    "SESSION-DATA",
];

const BOM: &str = "\u{feff}";

/// Where the token goes in a playlist, in order: the byte offset and what
/// goes before the pair there ([`super::Plan`] writes the new body). The
/// playlist must start with `#EXTM3U` (after an optional UTF-8 byte order
/// mark), trailing spaces on that line allowed. The offsets depend on the
/// playlist, the request's host and the token's parameter names, not on the
/// token's value.
pub(super) fn insertions(
    text: &str,
    propagation: &Propagation<'_>,
) -> Result<Vec<(usize, Separator)>, Unchanged> {
    let body = text.strip_prefix(BOM).unwrap_or(text);
    let first = body.split('\n').next().unwrap_or("");
    let header = first
        .strip_prefix("#EXTM3U")
        .ok_or(Unchanged::NotAPlaylist)?;
    if !header.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return Err(Unchanged::NotAPlaylist);
    }
    let bytes = text.as_bytes();
    let mut insertions: Vec<(usize, Separator)> = Vec::new();
    let mut start = text.len() - body.len();
    while start < bytes.len() {
        let end = find_newline(&bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = &text[start..end];
        let content = line.strip_suffix('\r').unwrap_or(line);
        if let Some((at, insertion)) = line_insertion(content, propagation) {
            insertions.push((start + at, insertion.separator));
        }
        start = end + 1;
    }
    Ok(insertions)
}

/// The first `\n` in `bytes`, eight bytes at a time: playlists are
/// thousands of short lines, and this search is most of the walk.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ NEWLINES;
        // A zero byte (a newline) sets its high bit; the lowest one set is
        // the first newline (borrows only reach the bytes above it).
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// Where the token goes in one line (without its line ending), if anywhere:
/// in a URI line, or in the `URI` attribute of a tag that has one.
fn line_insertion(line: &str, propagation: &Propagation<'_>) -> Option<(usize, Insertion)> {
    if let Some(tag) = line.strip_prefix("#EXT-X-") {
        let (name, attributes) = tag.split_once(':')?;
        if !URI_TAGS.contains(&name) {
            return None;
        }
        let (start, end) = uri_value(attributes)?;
        let insertion = propagation.insertion(&attributes[start..end])?;
        // Offsets in `line`: `#EXT-X-`, the rest of the name, the `:`.
        Some((7 + name.len() + 1 + start + insertion.at, insertion))
    } else if line.starts_with('#') {
        None
    } else {
        let (lead, uri, _) = split_whitespace(line);
        // An indented tag or comment is no URI.
        if uri.starts_with('#') {
            return None;
        }
        let insertion = propagation.insertion(uri)?;
        Some((lead.len() + insertion.at, insertion))
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
    fn find_newline_cases() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = b'\n';
                }
                // Bytes that differ from `\n` by one bit or by borrow.
                for (i, b) in bytes.iter_mut().enumerate().skip(at + 1) {
                    *b = [b'\n', 0x0b, 0x8a, 0x09, 0x00][i % 5];
                }
                let want = bytes.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&bytes), want, "len {len}, at {at}");
            }
        }
        assert_eq!(
            find_newline(&[0x0b, 0x8a, 0x09, 0x00, 0xff, 0x0b, 0x8a, 0x09, 0x0a]),
            Some(8)
        );
    }

    #[test]
    fn uri_value_cases() {
        for (attributes, want) in URI_VALUES {
            let got = uri_value(attributes).map(|(s, e)| &attributes[s..e]);
            assert_eq!(got, *want, "attributes {attributes:?}");
        }
    }
}
