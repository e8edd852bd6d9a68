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
/// port they bound (s3s-fs, etcd, the node's listeners). Callers retry
/// start-up when the port was taken in between.
pub fn free_port() -> u16 {
    free_port_on([127, 0, 0, 1])
}

/// A free port on `ip`, chosen below the kernel's ephemeral range. Every
/// server a test binds to port 0 (taps, fault origins) and every client
/// socket takes its port from that range: a port picked there and released
/// could be handed to another test's tap before this one's server binds
/// it, and this test's readiness probes would then land on that tap and be
/// counted as origin requests. Below the range only the picks of other test
/// processes compete, from some twenty thousand ports.
pub fn free_port_on(ip: [u8; 4]) -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PICKS: AtomicU64 = AtomicU64::new(0);
    let (low, high) = (10_000u64, u64::from(ephemeral_low()));
    if high < low + 2_000 {
        // An unusual range that leaves no room below it: the kernel's pick.
        let l = std::net::TcpListener::bind(std::net::SocketAddr::from((ip, 0))).expect("bind");
        return l.local_addr().expect("local addr").port();
    }
    let seed = u64::from(std::process::id()) << 32
        ^ unix_nanos()
        ^ PICKS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut x = seed | 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = (low + x % (high - low)) as u16;
        if std::net::TcpListener::bind(std::net::SocketAddr::from((ip, port))).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range on {ip:?}");
}

/// The first port of the kernel's ephemeral range (32768 by default).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
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
