//! Finding the token in a request: query parameters, headers and cookies.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::auth::cookie::cookie_values;
use crate::auth::reject::Reject;
use crate::auth::settings::TokenSource;
use crate::request::query::Pair;

/// Which kind of source a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Query,
    Header,
    Cookie,
}

/// A token found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    pub token: &'a str,
    pub kind: SourceKind,
    /// Index into the `sources` slice of the first source that carried it.
    pub source_index: usize,
}

/// Looks at every source. `query` holds percent-decoded `(name, value)` pairs. Empty values
/// count as absent. Two different non-empty values anywhere (two sources, a repeated
/// parameter, two cookies) give `Err(Reject::Conflict)`; the same value twice is fine. A
/// token that is not valid text gives `Err(Reject::Malformed)`.
pub fn find_token<'a>(
    sources: &[TokenSource],
    query: &'a [Pair<'_>],
    headers: &'a HeaderMap,
) -> Result<Option<Found<'a>>, Reject> {
    let mut found: Option<Found<'a>> = None;
    let mut offer = |token: &'a str, kind: SourceKind, source_index: usize| match &found {
        _ if token.is_empty() => Ok(()),
        None => {
            found = Some(Found {
                token,
                kind,
                source_index,
            });
            Ok(())
        }
        Some(first) if first.token == token => Ok(()),
        Some(_) => Err(Reject::Conflict),
    };
    for (index, source) in sources.iter().enumerate() {
        match source {
            TokenSource::Query(name) => {
                for (_, value) in query.iter().filter(|(key, _)| key == name) {
                    offer(value, SourceKind::Query, index)?;
                }
            }
            TokenSource::Header(name) => {
                let bearer = name.eq_ignore_ascii_case(AUTHORIZATION.as_str());
                for value in headers.get_all(name.as_str()) {
                    let text = value.to_str().map_err(|_| Reject::Malformed)?;
                    let token = if bearer {
                        bearer_token(text)
                    } else {
                        Some(text.trim())
                    };
                    if let Some(token) = token {
                        offer(token, SourceKind::Header, index)?;
                    }
                }
            }
            TokenSource::Cookie(name) => {
                for value in headers.get_all(COOKIE) {
                    for token in cookie_values(value.as_bytes(), name) {
                        offer(
                            token.map_err(|()| Reject::Malformed)?,
                            SourceKind::Cookie,
                            index,
                        )?;
                    }
                }
            }
        }
    }
    Ok(found)
}

/// The token of `Bearer <token>` (scheme in any casing); `None` for other schemes.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// True when query parameter `name` (percent-decoded) carries tokens, so the caller can drop
/// it before building the cache key or the origin request.
pub fn is_token_param(sources: &[TokenSource], name: &str) -> bool {
    sources
        .iter()
        .any(|s| matches!(s, TokenSource::Query(q) if q == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::settings::default_token_sources;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("test header name");
            let value = HeaderValue::from_bytes(value).expect("test header value");
            map.append(name, value);
        }
        map
    }

    fn query(pairs: &[(&'static str, &'static str)]) -> Vec<Pair<'static>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    type Want = Result<Option<(&'static str, SourceKind)>, Reject>;
    type Case = (&'static str, Vec<Pair<'static>>, HeaderMap, Want);

    #[test]
    fn extraction_table() {
        use SourceKind::*;
        let cases: Vec<Case> = vec![
            ("nothing", query(&[]), headers(&[]), Ok(None)),
            (
                "query jwt",
                query(&[("jwt", "t1")]),
                headers(&[]),
                Ok(Some(("t1", Query))),
            ),
            (
                "query token",
                query(&[("token", "t1")]),
                headers(&[]),
                Ok(Some(("t1", Query))),
            ),
            (
                "query other names",
                query(&[("JWT", "t1"), ("t", "x")]),
                headers(&[]),
                Ok(None),
            ),
            (
                "bearer",
                query(&[]),
                headers(&[("authorization", b"Bearer t1")]),
                Ok(Some(("t1", Header))),
            ),
            (
                "bearer lower",
                query(&[]),
                headers(&[("authorization", b"bearer t1")]),
                Ok(Some(("t1", Header))),
            ),
            (
                "bearer upper",
                query(&[]),
                headers(&[("Authorization", b"BEARER   t1 ")]),
                Ok(Some(("t1", Header))),
            ),
            (
                "basic ignored",
                query(&[]),
                headers(&[("authorization", b"Basic dXNlcjpwdw==")]),
                Ok(None),
            ),
            (
                "bearer without token",
                query(&[]),
                headers(&[("authorization", b"Bearer")]),
                Ok(None),
            ),
            (
                "bearer non-ascii",
                query(&[]),
                headers(&[("authorization", b"Bearer \xfft")]),
                Err(Reject::Malformed),
            ),
            (
                "cookie alone",
                query(&[]),
                headers(&[("cookie", b"jwt=t1")]),
                Ok(Some(("t1", Cookie))),
            ),
            (
                "cookie among others",
                query(&[]),
                headers(&[("cookie", b"a=1; jwt=t1; b=2")]),
                Ok(Some(("t1", Cookie))),
            ),
            (
                "cookie quoted",
                query(&[]),
                headers(&[("cookie", b"a=1; jwt=\"t1\"")]),
                Ok(Some(("t1", Cookie))),
            ),
            (
                "two cookie headers",
                query(&[]),
                headers(&[("cookie", b"a=1"), ("cookie", b"jwt=t1")]),
                Ok(Some(("t1", Cookie))),
            ),
            (
                "cookie name is exact",
                query(&[]),
                headers(&[("cookie", b"JWT=t1; myjwt=t2")]),
                Ok(None),
            ),
            (
                "empty query value",
                query(&[("jwt", "")]),
                headers(&[("cookie", b"jwt=t1")]),
                Ok(Some(("t1", Cookie))),
            ),
            (
                "query wins order",
                query(&[("jwt", "t1")]),
                headers(&[("authorization", b"Bearer t1"), ("cookie", b"jwt=t1")]),
                Ok(Some(("t1", Query))),
            ),
            (
                "repeated param same",
                query(&[("jwt", "t1"), ("jwt", "t1")]),
                headers(&[]),
                Ok(Some(("t1", Query))),
            ),
            (
                "repeated param differs",
                query(&[("jwt", "t1"), ("jwt", "t2")]),
                headers(&[]),
                Err(Reject::Conflict),
            ),
            (
                "jwt vs token",
                query(&[("jwt", "t1"), ("token", "t2")]),
                headers(&[]),
                Err(Reject::Conflict),
            ),
            (
                "query vs header",
                query(&[("jwt", "t1")]),
                headers(&[("authorization", b"Bearer t2")]),
                Err(Reject::Conflict),
            ),
            (
                "header vs cookie",
                query(&[]),
                headers(&[("authorization", b"Bearer t1"), ("cookie", b"jwt=t2")]),
                Err(Reject::Conflict),
            ),
            (
                "two cookies differ",
                query(&[]),
                headers(&[("cookie", b"jwt=t1"), ("cookie", b"jwt=t2")]),
                Err(Reject::Conflict),
            ),
            (
                "two bearer headers differ",
                query(&[]),
                headers(&[
                    ("authorization", b"Bearer t1"),
                    ("authorization", b"Bearer t2"),
                ]),
                Err(Reject::Conflict),
            ),
        ];
        let sources = default_token_sources();
        for (name, query, headers, want) in cases {
            let got = find_token(&sources, &query, &headers).map(|f| f.map(|f| (f.token, f.kind)));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn custom_header_is_raw() {
        let sources = vec![TokenSource::Header("x-edge-token".into())];
        let map = headers(&[("X-Edge-Token", b" t1 ")]);
        let found = find_token(&sources, &[], &map).expect("ok").expect("found");
        assert_eq!(
            (found.token, found.kind, found.source_index),
            ("t1", SourceKind::Header, 0)
        );
    }

    #[test]
    fn unusable_header_name_finds_nothing() {
        // Configuration refuses such names; lookup must still not panic on one.
        let sources = vec![TokenSource::Header("bad header".into())];
        let map = headers(&[("authorization", b"Bearer t1")]);
        assert_eq!(find_token(&sources, &[], &map), Ok(None));
    }

    #[test]
    fn token_params() {
        let sources = default_token_sources();
        let cases = [
            ("jwt", true),
            ("token", true),
            ("JWT", false),
            ("authorization", false),
            ("a", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_token_param(&sources, name), want, "{name}");
        }
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// Header values as a client could send them (any bytes a field value may hold).
        fn value() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40),
                "(Bearer|bearer|Basic) [ -~]{0,20}".prop_map(String::into_bytes),
                "([a-z]{0,4}=\"?[ -~]{0,6}\"?; ?){0,4}".prop_map(String::into_bytes),
            ]
        }

        fn sources() -> Vec<TokenSource> {
            let mut sources = default_token_sources();
            sources.push(TokenSource::Header("x-edge-token".into()));
            sources.push(TokenSource::Cookie("edge".into()));
            sources
        }

        /// Query pairs that carry no token.
        fn other_pairs() -> impl Strategy<Value = Vec<Pair<'static>>> {
            proptest::collection::vec(("[a-z]{1,6}", ".{0,8}"), 0..5).prop_map(|pairs| {
                pairs
                    .into_iter()
                    .filter(|(name, _)| name != "jwt" && name != "token")
                    .map(|(n, v)| (n.into(), v.into()))
                    .collect()
            })
        }

        proptest! {
            /// Any query, headers and cookies: an answer, never a panic; a token found
            /// is never empty.
            #[test]
            fn extraction_never_panics(
                query in proptest::collection::vec(("(jwt|token|[a-z]{1,3})", ".{0,12}"), 0..5),
                fields in proptest::collection::vec(
                    (proptest::sample::select(vec!["authorization", "cookie", "x-edge-token"]), value()),
                    0..5,
                ),
            ) {
                let query: Vec<Pair<'_>> = query.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
                let mut map = HeaderMap::new();
                for (name, value) in fields {
                    if let Ok(value) = HeaderValue::from_bytes(&value) {
                        map.append(name, value);
                    }
                }
                let sources = sources();
                match find_token(&sources, &query, &map) {
                    Ok(Some(found)) => prop_assert!(!found.token.is_empty()),
                    Ok(None) | Err(Reject::Conflict) | Err(Reject::Malformed) => {}
                    Err(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }

            /// A token put in the query is found there, among any other parameters.
            #[test]
            fn a_token_in_the_query_is_found(
                token in ".{1,40}",
                others in other_pairs(),
                at in any::<prop::sample::Index>(),
            ) {
                let mut query = others;
                let at = at.index(query.len() + 1);
                query.insert(at, ("jwt".into(), token.clone().into()));
                let (sources, map) = (sources(), HeaderMap::new());
                let found = find_token(&sources, &query, &map).expect("one token").expect("found");
                prop_assert_eq!((found.token, found.kind, found.source_index), (token.as_str(), SourceKind::Query, 0));
            }

            /// A token in a cookie among others, or after `Bearer`, is found there.
            #[test]
            fn a_token_in_a_cookie_or_bearer_is_found(
                token in "[A-Za-z0-9._-]{1,40}",
                before in "([a-c]{1,4}=[a-z0-9]{0,4}; ){0,3}",
                after in "(; [a-c]{1,4}=[a-z0-9]{0,4}){0,3}",
            ) {
                let cookie = format!("{before}jwt={token}{after}");
                let map = headers(&[("cookie", cookie.as_bytes())]);
                let found = find_token(&sources(), &[], &map).expect("one token").expect("found");
                prop_assert_eq!((found.token, found.kind), (token.as_str(), SourceKind::Cookie));
                let bearer = format!("Bearer {token}");
                let map = headers(&[("authorization", bearer.as_bytes())]);
                let found = find_token(&sources(), &[], &map).expect("one token").expect("found");
                prop_assert_eq!((found.token, found.kind), (token.as_str(), SourceKind::Header));
            }
        }
    }
}
