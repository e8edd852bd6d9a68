//! Test harness: real processes on loopback. A SigV4-checking S3 server
//! (s3s-fs), a recording TCP tap between the node and S3, and the node binary
//! itself. Everything waits on conditions with deadlines and is killed on
//! drop.

#![allow(dead_code)]

pub mod http;
pub mod jwks;
pub mod node;
pub mod ranges;
pub mod s3;
pub mod tap;
pub mod tls;
pub mod token;
pub mod tools;

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A port that was free a moment ago, for servers that cannot report the
/// port they bound (s3s-fs, the node's listeners). Callers retry start-up
/// when the port was taken in between.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// Deterministic pseudo-random bytes (xorshift), for test objects.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// s3s-fs holding `keys`, each `len` bytes from `seed`, and a node in front
/// of it configured by `configure`.
pub async fn node_over(
    keys: &[&str],
    len: usize,
    seed: u64,
    configure: impl FnOnce(&mut node::Options),
) -> (s3::S3, node::Node) {
    let body = bytes(len, seed);
    let objects: Vec<(&str, &[u8])> = keys.iter().map(|k| (*k, &body[..])).collect();
    let s3 = s3::S3::start(&objects).await;
    let mut opts = node::Options::new(s3.port);
    configure(&mut opts);
    let node = node::Node::start(opts).await;
    (s3, node)
}
