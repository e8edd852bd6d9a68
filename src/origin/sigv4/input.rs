//! What [`sign`](super::sign) accepts before it signs anything: a plain
//! host, a region name, and a path and query already in SigV4 canonical
//! encoding that survive URI parsing unchanged, so that the request is signed
//! exactly as it is sent.

use super::SignError;

/// The absolute URI the signer parses; it must keep the path and query
/// exactly as given.
pub(super) fn request_uri(host: &str, path: &str, query: &str) -> Result<String, SignError> {
    if !path.starts_with('/') {
        return Err(SignError::InvalidUri("path must start with '/'".to_owned()));
    }
    if !sigv4_encoded(path, b"/") {
        return Err(SignError::InvalidUri(
            "path is not in canonical form (unreserved, '/' and uppercase %XX only)".to_owned(),
        ));
    }
    if !sigv4_encoded(query, b"=&") {
        return Err(SignError::InvalidUri(
            "query is not in canonical form (unreserved, '=', '&' and uppercase %XX only)"
                .to_owned(),
        ));
    }
    let uri = if query.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{query}")
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| SignError::InvalidUri(e.to_string()))?;
    let same_query = parsed.query().unwrap_or("") == query;
    if parsed.path() != path || !same_query {
        return Err(SignError::InvalidUri(
            "path or query does not survive URI parsing".to_owned(),
        ));
    }
    Ok(uri)
}

/// Whether `s` is already in SigV4 canonical encoding: only unreserved bytes,
/// the `raw` delimiters, and `%XX` escapes with uppercase hex. Such a string
/// is signed exactly as it is sent.
fn sigv4_encoded(s: &str, raw: &[u8]) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| {
                bytes
                    .get(j)
                    .is_some_and(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
            };
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || raw.contains(&b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `name`, `name:port`, `1.2.3.4:port` or `[v6]:port`: no userinfo, path,
/// spaces or control characters.
pub(super) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
        && host.parse::<http::uri::Authority>().is_ok()
        && valid_port(host)
}

/// The part after the last `:` outside `[...]`, if any, is a `u16`.
fn valid_port(host: &str) -> bool {
    let tail = host.rfind(']').map_or(host, |i| &host[i + 1..]);
    match tail.rfind(':') {
        None => true,
        Some(i) => tail[i + 1..].parse::<u16>().is_ok(),
    }
}

pub(super) fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
