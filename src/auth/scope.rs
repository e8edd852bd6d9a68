//! Path scopes: a claim listing the path patterns a token opens, such as `/courses/101/*`.
//!
//! A pattern is matched fully anchored against the canonical path, the same string the cache
//! keys on and S3 is asked for. `*` stands for any run of characters, `/` included, so
//! `/courses/101/*` covers `/courses/101/hls/seg-1.ts` but neither `/courses/1011/v.mp4` nor
//! `/courses/101` itself. Every other character is literal. Patterns are brought to the
//! canonical encoding when the token is read (`%xx` escapes decoded, then every byte that is
//! not unreserved written as uppercase `%XX`), so `/courses/intro video/*` and
//! `/courses/intro%20video/*` are the same pattern; a literal star is written `%2A`.

use serde_json::Value;

use crate::auth::reject::Reject;
use crate::request::{decode_escape, push_encoded};

/// Most patterns one token may carry.
pub const MAX_PATTERNS: usize = 256;

/// The patterns of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    patterns: Vec<Pattern>,
}

/// One pattern, split at its stars: `pieces.len() - 1` stars.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    pieces: Vec<String>,
}

impl Scope {
    /// Reads the claim: one pattern string or an array of them. Anything else, an empty
    /// pattern, or one that does not start with `/`, is a malformed token.
    pub fn parse(value: &Value) -> Result<Scope, Reject> {
        let texts: Vec<&str> = match value {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) if many.len() <= MAX_PATTERNS => many
                .iter()
                .map(|v| v.as_str().ok_or(Reject::Malformed))
                .collect::<Result<_, _>>()?,
            _ => return Err(Reject::Malformed),
        };
        let patterns = texts
            .into_iter()
            .map(Pattern::parse)
            .collect::<Result<_, _>>()?;
        Ok(Scope { patterns })
    }

    /// True when some pattern matches the whole of `canonical_path`.
    pub fn covers(&self, canonical_path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(canonical_path))
    }
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, Reject> {
        if !text.starts_with('/') {
            return Err(Reject::Malformed);
        }
        let pieces = text
            .split('*')
            .map(canonical_piece)
            .collect::<Result<_, _>>()?;
        Ok(Pattern { pieces })
    }

    fn matches(&self, path: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return false,
        };
        let Some(mut tail) = path.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty();
        };
        // Leftmost match of each middle piece is optimal for `*`-only globs.
        for piece in middle {
            match tail.find(piece.as_str()) {
                Some(at) => tail = &tail[at + piece.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

/// The canonical encoding of a literal part of a pattern; `/` stays raw.
fn canonical_piece(piece: &str) -> Result<String, Reject> {
    let bytes = piece.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            decoded.push(decode_escape(bytes, i).ok_or(Reject::Malformed)?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let mut out = String::with_capacity(piece.len());
    for (n, segment) in decoded.split(|b| *b == b'/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        push_encoded(&mut out, segment);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(value: Value) -> Scope {
        Scope::parse(&value).expect("valid scope")
    }

    #[test]
    fn matching_table() {
        let cases: &[(Value, &str, bool)] = &[
            (json!("/courses/101/*"), "/courses/101/v.mp4", true),
            (json!("/courses/101/*"), "/courses/101/hls/seg-1.ts", true),
            (json!("/courses/101/*"), "/courses/202/v.mp4", false),
            (json!("/courses/101/*"), "/courses/1011/v.mp4", false),
            (json!("/courses/101/*"), "/courses/101", false),
            (json!("/courses/101/*"), "/x/courses/101/v.mp4", false),
            (json!("/courses/101/v.mp4"), "/courses/101/v.mp4", true),
            (json!("/courses/101/v.mp4"), "/courses/101/v.mp4x", false),
            (json!("/courses/101/v.mp4"), "/courses/101/v.mp", false),
            (json!("/courses/*/intro.mp4"), "/courses/7/intro.mp4", true),
            (
                json!("/courses/*/intro.mp4"),
                "/courses/7/8/intro.mp4",
                true,
            ),
            (
                json!("/courses/*/intro.mp4"),
                "/courses/7/intro.mp4.bak",
                false,
            ),
            (json!("/a/*b*c"), "/a/xbyc", true),
            (json!("/a/*b*c"), "/a/bc", true),
            (json!("/a/*b*c"), "/a/xbyd", false),
            (json!("/a/*ab"), "/a/aab", true),
            (json!("/*"), "/anything/at/all", true),
            (json!(["/a/*", "/b/*"]), "/b/1", true),
            (json!(["/a/*", "/b/*"]), "/c/1", false),
            (json!([]), "/a/1", false),
            (json!("/intro video/*"), "/intro%20video/1.ts", true),
            (json!("/intro%20video/*"), "/intro%20video/1.ts", true),
            (json!("/caf%c3%a9/*"), "/caf%C3%A9/1.ts", true),
            (json!("/café/*"), "/caf%C3%A9/1.ts", true),
            (json!("/lit%2A/v"), "/lit%2A/v", true),
            (json!("/lit%2A/v"), "/litx/v", false),
            (json!("/~user/*"), "/~user/v", true),
        ];
        for (value, path, want) in cases {
            assert_eq!(
                scope(value.clone()).covers(path),
                *want,
                "{value} on {path}"
            );
        }
    }

    #[test]
    fn bad_scopes_are_malformed() {
        for value in [
            json!(7),
            json!({"path": "/a"}),
            json!(["/a", 7]),
            json!("a/relative"),
            json!(""),
            json!("/bad%zz"),
            json!(null),
            Value::Array(vec![json!("/a"); MAX_PATTERNS + 1]),
        ] {
            assert_eq!(Scope::parse(&value), Err(Reject::Malformed), "{value}");
        }
    }
}
