//! Checks `auth.token_sources`.

use http::HeaderName;

use crate::auth::settings::TokenSource;
use crate::config::Problem;

pub(crate) fn check_sources(sources: &[TokenSource], problems: &mut Vec<Problem>) {
    if sources.is_empty() {
        problems.push(Problem::new(
            "auth.token_sources",
            "is empty: no request could carry a token; list at least one source or remove the \
             setting for the defaults",
        ));
    }
    for (i, source) in sources.iter().enumerate() {
        let at = format!("auth.token_sources[{i}]");
        match source {
            TokenSource::Header(name) => {
                if HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(Problem::new(
                        at,
                        format!("\"{name}\" is not a valid header name: write one such as `authorization`"),
                    ));
                }
            }
            TokenSource::Query(name) | TokenSource::Cookie(name) => {
                let bad = name.is_empty()
                    || name.bytes().any(|b| {
                        matches!(b, b'=' | b'&' | b';' | b',' | b'"') || !b.is_ascii_graphic()
                    });
                if bad {
                    problems.push(Problem::new(
                        at,
                        format!("\"{name}\" is not a usable name: use letters, digits, `-` or `_`"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_table() {
        let cases = [
            (TokenSource::Query("jwt".into()), true),
            (TokenSource::Header("authorization".into()), true),
            (TokenSource::Header("X-Token".into()), true),
            (TokenSource::Cookie("jwt".into()), true),
            (TokenSource::Query(String::new()), false),
            (TokenSource::Query("a=b".into()), false),
            (TokenSource::Cookie("a b".into()), false),
            (TokenSource::Header("bad header".into()), false),
        ];
        for (source, ok) in cases {
            let mut problems = Vec::new();
            check_sources(std::slice::from_ref(&source), &mut problems);
            assert_eq!(problems.is_empty(), ok, "{source:?}: {problems:?}");
            if !ok {
                assert_eq!(problems[0].key, "auth.token_sources[0]");
            }
        }
        let mut problems = Vec::new();
        check_sources(&[], &mut problems);
        assert_eq!(problems[0].key, "auth.token_sources");
    }
}
