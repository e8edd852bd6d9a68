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
    let is_token = |pair: &str| {
        pair.split_once('=').is_some_and(|(name, _)| {
            let name = name.replace('+', " ");
            is_token_param(sources, &percent_decode_str(&name).decode_utf8_lossy())
        })
    };
    if !raw_query.split('&').any(is_token) {
        return Cow::Borrowed(raw_query);
    }
    let pairs: Vec<Cow<'q, str>> = raw_query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_token(pair) => Cow::Owned(format!("{name}={REDACTED}")),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
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
        ];
        let sources = default_token_sources();
        for (raw, want) in cases {
            assert_eq!(redact_query(&sources, raw), want, "{raw}");
        }
    }
}
