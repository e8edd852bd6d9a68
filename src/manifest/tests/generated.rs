//! Generated garbage: random playlists and MPDs built from pieces that
//! matter to the parsers, some of them well-formed, some spliced with
//! stray markup. Nothing may panic; a playlist line gets at most one token
//! inserted and nothing else changes; rewriting an output again changes
//! nothing (its URIs carry the token now).

use super::*;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

const HLS_PIECES: &[&str] = &[
    "#EXTM3U\n",
    "#EXT-X-KEY:",
    "#EXT-X-MAP:",
    "#EXT-X-MEDIA:",
    "URI=\"",
    "\"",
    ",",
    "=",
    "NAME=",
    "seg.ts",
    "?",
    "&",
    "#",
    "jwt=",
    "token=x",
    "a=1",
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "https://cdn.example/",
    "https://other.example/",
    "//cdn.example:443/",
    "data:",
    "skd://",
    "é",
    "\\",
    "%",
    "$Number$",
    "\u{feff}",
];

/// A random playlist: random pieces, after `#EXTM3U` three times in four.
fn generate_playlist(rng: &mut Rng) -> String {
    let mut body = String::new();
    if rng.below(4) != 0 {
        body.push_str("#EXTM3U\n");
    }
    for _ in 0..rng.below(40) {
        body.push_str(HLS_PIECES[rng.below(HLS_PIECES.len())]);
    }
    body
}

/// Stray pieces spliced into generated MPDs.
const DASH_PIECES: &[&str] = &[
    "<MPD>",
    "</MPD>",
    "<BaseURL>",
    "</BaseURL>",
    "\"",
    "'",
    "/>",
    ">",
    "<",
    "&amp;",
    "&",
    "&#x41;",
    "&#10;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<!DOCTYPE",
    "?",
    "#",
    " ",
    "\r\n",
    "https://other.example/",
    "$Number$",
    "jwt=x",
    "\u{feff}",
];

const ELEMENTS: &[&str] = &[
    "Period",
    "AdaptationSet",
    "Representation",
    "BaseURL",
    "mpd:BaseURL",
    "SegmentTemplate",
    "SegmentList",
    "SegmentURL",
    "SegmentBase",
    "Initialization",
    "Location",
    "S",
];

const ATTRIBUTES: &[&str] = &[
    "media",
    "initialization",
    "index",
    "sourceURL",
    "id",
    "x:media",
];

const VALUES: &[&str] = &[
    "",
    "a.m4s",
    "$Number$.m4s",
    "seg.m4s?a=1&amp;b=2",
    "x.m4s?jwt=y",
    "&#x61;.m4s",
    "https://cdn.example/a/",
    "https://other.example/b/",
    "//cdn.example/c/",
    " d/ ",
    "e&lt;f&gt;",
    "g#frag",
    "skd://k",
    "h&#10;i",
    "j?",
    "&quot;k&apos;",
];

/// A random MPD, well-formed before up to two stray pieces are spliced in.
fn generate_mpd(rng: &mut Rng) -> String {
    let mut body = String::from("<MPD>");
    let mut open = Vec::new();
    for _ in 0..rng.below(30) {
        match rng.below(4) {
            0 if !open.is_empty() => {
                body.push_str(&format!("</{}>", open.pop().unwrap_or("x")));
            }
            1 => body.push_str(VALUES[rng.below(VALUES.len())]),
            2 => body.push_str(&format!("<![CDATA[{}]]>", VALUES[rng.below(VALUES.len())])),
            _ => {
                let name = ELEMENTS[rng.below(ELEMENTS.len())];
                body.push_str(&format!("<{name}"));
                for _ in 0..rng.below(3) {
                    let quote = ["\"", "'"][rng.below(2)];
                    let attribute = ATTRIBUTES[rng.below(ATTRIBUTES.len())];
                    let value = VALUES[rng.below(VALUES.len())];
                    body.push_str(&format!(" {attribute}={quote}{value}{quote}"));
                }
                if rng.below(3) == 0 {
                    body.push_str("/>");
                } else {
                    body.push('>');
                    open.push(name);
                }
            }
        }
    }
    while let Some(name) = open.pop() {
        body.push_str(&format!("</{name}>"));
    }
    body.push_str("</MPD>");
    for _ in 0..rng.below(3).saturating_sub(1) {
        let mut at = rng.below(body.len() + 1);
        while !body.is_char_boundary(at) {
            at -= 1;
        }
        body.insert_str(at, DASH_PIECES[rng.below(DASH_PIECES.len())]);
    }
    body
}

/// Whether `output` is `input` with at most one token pair inserted (a
/// line of a playlist gets at most one), with or without a separator.
fn one_insertion(input: &str, output: &str, pair: &str) -> bool {
    input == output
        || output.match_indices(pair).any(|(at, _)| {
            [0, 1].iter().any(|&sep| {
                at >= sep
                    && output.is_char_boundary(at - sep)
                    && format!("{}{}", &output[..at - sep], &output[at + pair.len()..]) == input
            })
        })
}

#[test]
fn generated_garbage() {
    const ROUNDS: usize = 20_000;
    let pair = "jwt=Z9";
    let z9 = token("Z9");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Per format: parsed, and parsed with at least one URI rewritten.
    let (mut parsed, mut changed) = ([0usize; 2], [0usize; 2]);
    for _ in 0..ROUNDS {
        let hls = generate_playlist(&mut rng);
        if let Ok(out) = rewrite(Kind::Hls, hls.as_bytes(), &z9, Some(HOST)) {
            parsed[0] += 1;
            changed[0] += usize::from(out != hls.as_bytes());
            let out = String::from_utf8(out).expect("UTF-8 in, UTF-8 out");
            let lines_in: Vec<&str> = hls.split('\n').collect();
            let lines_out: Vec<&str> = out.split('\n').collect();
            assert_eq!(lines_in.len(), lines_out.len(), "input {hls:?}");
            for (a, b) in lines_in.iter().zip(&lines_out) {
                assert!(
                    one_insertion(a, b, pair),
                    "input {hls:?}: line {a:?} became {b:?}"
                );
            }
            let again = rewrite(Kind::Hls, out.as_bytes(), &z9, Some(HOST));
            assert_eq!(
                again.as_deref(),
                Ok(out.as_bytes()),
                "not idempotent: {hls:?}"
            );
        }
        let mpd = generate_mpd(&mut rng);
        if let Ok(out) = rewrite(Kind::Dash, mpd.as_bytes(), &z9, Some(HOST)) {
            parsed[1] += 1;
            changed[1] += usize::from(out != mpd.as_bytes());
            let again = rewrite(Kind::Dash, &out, &z9, Some(HOST));
            assert_eq!(again.as_deref(), Ok(&out[..]), "not idempotent: {mpd:?}");
        }
    }
    // The generators must reach the rewriting, not only the refusals.
    for format in 0..2 {
        assert!(
            parsed[format] > ROUNDS / 4 && changed[format] > ROUNDS / 10,
            "parsed {parsed:?}, changed {changed:?}"
        );
    }
}
