//! Test harness: real processes on loopback. A SigV4-checking S3 server
//! (s3s-fs), a recording TCP tap between the node and S3, and the node binary
//! itself, put together by `world::World::builder()`. Everything waits on
//! conditions with deadlines and is killed on drop.
//!
//! `promql.rs` is not a module here: deploy_artifacts.rs alone uses it and
//! includes it by path, so that its unit tests run once and not in every
//! test binary.

// Every test file links this whole module and uses a part of it.
#![allow(dead_code)]

pub mod browser;
pub mod cli;
pub mod clock;
pub mod conn;
pub mod curl;
pub mod etcd;
pub mod etcd_fleet;
pub mod fault_origin;
pub mod fleet;
pub mod http;
pub mod jwks;
pub mod node;
pub mod ranges;
pub mod relay;
pub mod s3;
pub mod tap;
pub mod tls;
pub mod tmpfs;
pub mod token;
pub mod tools;
pub mod world;

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
