//! Hiding tokens in raw query strings before they reach an access log.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::auth::extract::is_token_param;
use crate::auth::settings::TokenSource;

/// What a redacted value becomes.
pub const REDACTED: &str = "REDACTED";

/// Replaces the value of every token parameter in `raw_query` (the part after `?`, still
/// percent-encoded) with `REDACTED`. Names are compared after percent-decoding, so
/// `j%77t=...` is redacted too. Other parameters are left byte for byte.
pub fn redact_query<'q>(sources: &[TokenSource], raw_query: &'q str) -> Cow<'q, str> {
    let mut pieces = Vec::new();
    redacted_pieces(sources, raw_query, |piece| pieces.push(piece));
    match pieces.as_slice() {
        [whole] => Cow::Borrowed(whole),
        _ => Cow::Owned(pieces.concat()),
    }
}

/// The redacted `raw_query` (as [`redact_query`] makes it) handed to `piece` in
/// consecutive parts, without copying: the access log writes them straight into its
/// line. A query without a token comes as one piece, the whole of it.
pub fn redacted_pieces<'q>(
    sources: &[TokenSource],
    raw_query: &'q str,
    mut piece: impl FnMut(&'q str),
) {
    // Start of the part not handed out yet.
    let mut kept = 0;
    let mut at = 0;
    for pair in raw_query.split('&') {
        if let Some(eq) = pair.find('=')
            && is_token_name(sources, &pair[..eq])
        {
            piece(&raw_query[kept..=at + eq]);
            piece(REDACTED);
            kept = at + pair.len();
        }
        at += pair.len() + 1;
    }
    piece(&raw_query[kept..]);
}

/// A parameter name as it arrived, compared once decoded (`+` is a space). Only a name
/// with something to decode pays for decoding.
fn is_token_name(sources: &[TokenSource], raw: &str) -> bool {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return is_token_param(sources, raw);
    }
    let name = raw.replace('+', " ");
    is_token_param(sources, &percent_decode_str(&name).decode_utf8_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::settings::default_token_sources;

    #[test]
    fn redact_table() {
        let cases = [
            ("", ""),
            ("a=1&b=2", "a=1&b=2"),
            ("jwt=eyJ.x.y", "jwt=REDACTED"),
            ("a=1&jwt=eyJ.x.y&b=2", "a=1&jwt=REDACTED&b=2"),
            ("token=t&jwt=u", "token=REDACTED&jwt=REDACTED"),
            ("j%77t=eyJ", "j%77t=REDACTED"),
            ("jwt", "jwt"),
            ("jwt=", "jwt=REDACTED"),
            ("JWT=keep", "JWT=keep"),
            ("x=jwt%3Dsecret", "x=jwt%3Dsecret"),
            ("a=%ZZ&jwt=t", "a=%ZZ&jwt=REDACTED"),
            ("&&jwt=t&&", "&&jwt=REDACTED&&"),
            ("jwt=a=b&c", "jwt=REDACTED&c"),
            (
                "jwt=t&jwt=u&jwt=v",
                "jwt=REDACTED&jwt=REDACTED&jwt=REDACTED",
            ),
            ("=jwt&jwt", "=jwt&jwt"),
            ("a=1&token=", "a=1&token=REDACTED"),
        ];
        let sources = default_token_sources();
        for (raw, want) in cases {
            assert_eq!(redact_query(&sources, raw), want, "{raw}");
        }
    }

    #[test]
    fn names_with_plus_or_escapes_are_decoded() {
        let sources = vec![
            TokenSource::Query("jwt".to_owned()),
            TokenSource::Query("my token".to_owned()),
        ];
        let cases = [
            ("my+token=t", "my+token=REDACTED"),
            ("my%20token=t", "my%20token=REDACTED"),
            ("my%2Btoken=t", "my%2Btoken=t"),
            ("%6A%77%74=t&a=1", "%6A%77%74=REDACTED&a=1"),
            ("jw%74=t", "jw%74=REDACTED"),
            ("jw%=t", "jw%=t"),
            ("jwt+=t", "jwt+=t"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact_query(&sources, raw), want, "{raw}");
        }
    }

    #[test]
    fn a_query_without_a_token_is_one_piece_and_borrowed() {
        let sources = default_token_sources();
        for raw in ["", "a=1&b=2", "jwt", "x=jwt%3D"] {
            let mut pieces = Vec::new();
            redacted_pieces(&sources, raw, |p| pieces.push(p));
            assert_eq!(pieces, [raw]);
            assert!(matches!(redact_query(&sources, raw), Cow::Borrowed(_)));
        }
        let mut pieces = Vec::new();
        redacted_pieces(&sources, "a=1&jwt=t&b=2", |p| pieces.push(p));
        assert_eq!(pieces, ["a=1&jwt=", REDACTED, "&b=2"]);
    }
}
