//! Paths that need no token.

use crate::config::Problem;

/// Canonical path prefixes that need no token. A prefix ending in `/` matches what is below
/// it; any other prefix matches itself and what is below it (`/free` matches `/free` and
/// `/free/a`, never `/freedom`).
#[derive(Debug, Clone, Default)]
pub(crate) struct PublicPrefixes {
    prefixes: Vec<String>,
}

impl PublicPrefixes {
    pub fn new(prefixes: &[String], problems: &mut Vec<Problem>) -> Self {
        let mut kept = Vec::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            if !prefix.starts_with('/') {
                problems.push(Problem::new(
                    format!("auth.public_prefixes[{i}]"),
                    format!(
                        "\"{prefix}\" does not start with '/': write a path such as \"/public/\""
                    ),
                ));
            } else if prefix.contains("/../") || prefix.contains("/./") || prefix.contains("//") {
                problems.push(Problem::new(
                    format!("auth.public_prefixes[{i}]"),
                    format!(
                        "\"{prefix}\" is not a canonical path: remove `.`, `..` and empty segments"
                    ),
                ));
            } else {
                kept.push(prefix.clone());
            }
        }
        PublicPrefixes { prefixes: kept }
    }

    /// `canonical_path` must already be normalised by the caller.
    pub fn contains(&self, canonical_path: &str) -> bool {
        self.prefixes.iter().any(|prefix| {
            if prefix.ends_with('/') {
                canonical_path.starts_with(prefix.as_str())
            } else {
                canonical_path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_table() {
        let mut problems = Vec::new();
        let public =
            PublicPrefixes::new(&["/public/".to_owned(), "/free".to_owned()], &mut problems);
        assert!(problems.is_empty());
        let cases = [
            ("/public/a.mp4", true),
            ("/public/", true),
            ("/public", false),
            ("/publicity/x", false),
            ("/free", true),
            ("/free/a", true),
            ("/freedom", false),
            ("/private/a", false),
            ("", false),
        ];
        for (path, want) in cases {
            assert_eq!(public.contains(path), want, "{path}");
        }
    }

    #[test]
    fn bad_prefixes_are_problems() {
        let mut problems = Vec::new();
        let bad = [
            "public/".to_owned(),
            "/a/../b/".to_owned(),
            "/ok/".to_owned(),
        ];
        PublicPrefixes::new(&bad, &mut problems);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["auth.public_prefixes[0]", "auth.public_prefixes[1]"]);
    }
}
