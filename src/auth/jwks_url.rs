//! Fetching a JWKS document over http or https with Pingora's own client connector.

use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Limit for connecting, and for each read.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `jwks_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    pub text: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, as sent.
    pub target: String,
}

impl JwksUrl {
    /// Checks the URL; the error says what to fix.
    pub fn parse(text: &str) -> Result<JwksUrl, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("\"{text}\" is not a URL ({e}): write https://HOST/PATH"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "\"{text}\" is not http or https: write https://HOST/PATH"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("\"{text}\" has no host: write https://HOST/PATH"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "\"{text}\" carries user information: remove it (no secrets in URLs)"
            ));
        }
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        if host.is_empty() {
            return Err(format!("\"{text}\" has no host: write https://HOST/PATH"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let target = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(JwksUrl {
            text: text.to_owned(),
            tls,
            host,
            port,
            target,
        })
    }

    /// GETs the document: status 200 and at most [`MAX_JWKS_BYTES`], or an error message.
    pub async fn fetch(&self) -> Result<String, String> {
        let addr = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| "name resolution timed out".to_owned())?
        .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", self.host))?;
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        peer.options.connection_timeout = Some(FETCH_TIMEOUT);
        peer.options.total_connection_timeout = Some(FETCH_TIMEOUT);
        peer.options.read_timeout = Some(FETCH_TIMEOUT);
        peer.options.write_timeout = Some(FETCH_TIMEOUT);
        // A fresh connector each time: fetches are rare, and connections are never shared
        // between runtimes.
        let connector = Connector::new(None);
        let (mut session, _) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut req = RequestHeader::build("GET", self.target.as_bytes(), None)
            .map_err(|e| format!("bad request: {e}"))?;
        let host_header = if (self.tls && self.port == 443) || (!self.tls && self.port == 80) {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let _ = req.insert_header("host", host_header);
        let _ = req.insert_header("accept", "application/jwk-set+json, application/json");
        let _ = req.insert_header("connection", "close");
        let _ = req.insert_header(
            "user-agent",
            concat!("cdn-node/", env!("CARGO_PKG_VERSION")),
        );
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        session
            .finish_request_body()
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        session
            .read_response_header()
            .await
            .map_err(|e| format!("no response: {e}"))?;
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .unwrap_or(0);
        if status != 200 {
            return Err(format!("answered {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = session
            .read_response_body()
            .await
            .map_err(|e| format!("body cut short: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("document is larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        session.shutdown().await;
        String::from_utf8(body).map_err(|_| "document is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = JwksUrl::parse("https://idp.example/.well-known/jwks.json").expect("ok");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (true, "idp.example", 443, "/.well-known/jwks.json")
        );
        let u = JwksUrl::parse("http://127.0.0.1:8081").expect("ok");
        assert_eq!((u.tls, u.port, u.target.as_str()), (false, 8081, "/"));
        let u = JwksUrl::parse("http://[::1]:9/k?v=2").expect("ok");
        assert_eq!((u.host.as_str(), u.target.as_str()), ("::1", "/k?v=2"));
        for bad in [
            "ftp://idp.example/jwks",
            "idp.example/jwks",
            "/jwks.json",
            "https://user:pw@idp.example/jwks",
            "not a url",
        ] {
            assert!(JwksUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
