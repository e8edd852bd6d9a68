//! The CORS preflight: an `OPTIONS` a browser sends before a cross-origin
//! request it may not send unasked (one with `Range` or `Authorization`).
//! The node answers it itself, without a token: never sent to the origin,
//! never cached.

use http::Method;
use pingora_http::{RequestHeader, ResponseHeader};

use super::Cors;
use crate::request::method::MethodSet;

/// Request fields every browser may send without asking; a page's
/// preflight may still list them.
const SAFELISTED: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// Whether `req` is a preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(req: &RequestHeader) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Why a preflight is refused (the page's request is then never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Origin,
    Method,
    Headers,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Origin => "origin",
            Refused::Method => "method",
            Refused::Headers => "headers",
        }
    }
}

impl Cors {
    /// The answer to a preflight (204 with the CORS fields), or why it is
    /// refused: `methods` are those the node serves or passes on.
    pub fn preflight(
        &self,
        req: &RequestHeader,
        methods: MethodSet,
    ) -> Result<ResponseHeader, Refused> {
        let field = |name| req.headers.get(name);
        let origin = field(http::header::ORIGIN).ok_or(Refused::Origin)?;
        if !self.allows(origin) {
            return Err(Refused::Origin);
        }
        let method = field(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        if !methods.contains(method) {
            return Err(Refused::Method);
        }
        let mut asked = Vec::new();
        for value in req
            .headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        {
            let text = value.to_str().map_err(|_| Refused::Headers)?;
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let name = name.to_ascii_lowercase();
                let known = self.allowed_request_headers.contains(&name)
                    || SAFELISTED.contains(&name.as_str());
                if !known {
                    return Err(Refused::Headers);
                }
                if !asked.contains(&name) {
                    asked.push(name);
                }
            }
        }
        let mut h = ResponseHeader::build(204, Some(8)).map_err(|_| Refused::Origin)?;
        // Values from the request were checked above; the rest are static.
        let _ = h.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        let _ = h.insert_header(
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            methods.to_string(),
        );
        if !asked.is_empty() {
            let _ = h.insert_header(http::header::ACCESS_CONTROL_ALLOW_HEADERS, asked.join(", "));
        }
        if self.allow_credentials {
            let _ = h.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        let _ = h.insert_header(http::header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        let _ = h.insert_header(
            http::header::VARY,
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cors::tests::cors;

    fn request(method: &str, fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/v/a.m3u8", None).unwrap();
        for (name, value) in fields {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    const PAGE: &str = "https://portal.example.com";

    #[test]
    fn only_options_with_origin_and_method_is_a_preflight() {
        let origin = ("origin", PAGE);
        let method = ("access-control-request-method", "GET");
        assert!(is_preflight(&request("OPTIONS", &[origin, method])));
        assert!(!is_preflight(&request("OPTIONS", &[origin])));
        assert!(!is_preflight(&request("OPTIONS", &[method])));
        assert!(!is_preflight(&request("GET", &[origin, method])));
    }

    #[test]
    fn preflights_are_answered_or_refused() {
        let c = cors(&[PAGE], false);
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<Option<&'a str>, Refused>);
        let cases: &[Case] = &[
            (&[("access-control-request-method", "GET")], Ok(None)),
            (
                &[
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "Range, authorization"),
                ],
                Ok(Some("range, authorization")),
            ),
            (
                &[
                    ("access-control-request-method", "HEAD"),
                    ("access-control-request-headers", "x-token,if-range"),
                ],
                Ok(Some("x-token, if-range")),
            ),
            (
                &[
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "accept, range, range"),
                ],
                Ok(Some("accept, range")),
            ),
            (
                &[("access-control-request-method", "POST")],
                Err(Refused::Method),
            ),
            (
                &[("access-control-request-method", "get")],
                Err(Refused::Method),
            ),
            (
                &[
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-forwarded-for"),
                ],
                Err(Refused::Headers),
            ),
        ];
        for (fields, want) in cases {
            let mut all = vec![("origin", PAGE)];
            all.extend_from_slice(fields);
            let got = c.preflight(&request("OPTIONS", &all), MethodSet::READ);
            match (got, want) {
                (Ok(h), Ok(allowed)) => {
                    assert_eq!(h.status.as_u16(), 204);
                    let get = |n: &str| h.headers.get(n).map(|v| v.to_str().unwrap());
                    assert_eq!(get("access-control-allow-origin"), Some(PAGE));
                    assert_eq!(get("access-control-allow-methods"), Some("GET, HEAD"));
                    assert_eq!(get("access-control-allow-headers"), *allowed, "{fields:?}");
                    assert_eq!(get("access-control-max-age"), Some("600"));
                    assert_eq!(get("access-control-allow-credentials"), None);
                    assert_eq!(get("content-length"), None, "a 204 has no length");
                }
                (got, want) => assert_eq!(got.map(|_| None), *want, "{fields:?}"),
            }
        }
        let other = request(
            "OPTIONS",
            &[
                ("origin", "https://evil.example.com"),
                ("access-control-request-method", "GET"),
            ],
        );
        assert_eq!(
            c.preflight(&other, MethodSet::READ).err(),
            Some(Refused::Origin)
        );
    }

    #[test]
    fn a_preflight_allows_the_methods_passed_to_the_origin() {
        let c = cors(&[PAGE], false);
        let passed = MethodSet::READ.union(MethodSet::of("POST").unwrap());
        for (method, allowed) in [
            ("POST", true),
            ("GET", true),
            ("PUT", false),
            ("post", false),
        ] {
            let fields = [("origin", PAGE), ("access-control-request-method", method)];
            let got = c.preflight(&request("OPTIONS", &fields), passed);
            match got {
                Ok(h) => {
                    assert!(allowed, "{method}");
                    let methods = h.headers.get("access-control-allow-methods").unwrap();
                    assert_eq!(methods, "GET, HEAD, POST");
                }
                Err(refused) => {
                    assert!(!allowed, "{method}");
                    assert_eq!(refused, Refused::Method);
                }
            }
        }
    }
}
