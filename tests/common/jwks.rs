//! A tiny JWKS server: answers every GET with the current document and counts fetches.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<(String, usize, bool)>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(document: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new((document, 0, false)));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let (body, failing) = {
                        let mut s = shared.lock().unwrap();
                        s.1 += 1;
                        (s.0.clone(), s.2)
                    };
                    let status = if failing { "503 Unavailable" } else { "200 OK" };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub fn publish(&self, document: String) {
        self.state.lock().unwrap().0 = document;
    }

    /// While set, every fetch is answered 503.
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().2 = failing;
    }

    pub fn fetches(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JWKS of HS256 `oct` keys, one per (kid, secret).
pub fn oct_jwks(keys: &[(&str, &[u8])]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, secret)| {
            serde_json::json!({"kty": "oct", "kid": kid, "alg": "HS256",
                "k": URL_SAFE_NO_PAD.encode(secret)})
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}
