//! Disk hits sent from the page cache with `sendfile` by the HTTP/1 hit
//! lane, through the real node: the answer is Pingora's hit path's, field
//! for field and byte for byte; a body many times the socket buffer goes
//! out whole to a slow reader and the connection serves its next request;
//! a body the page cache does not hold, a range of several parts, and
//! `cache.sendfile: false` take the path that reads the file; a body memory may hold is
//! written from memory, whole to a slow reader too.

mod common;

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use common::browser::files_under;
use common::conn::Conn;
use common::http::{Headers, header, lasting, metric, raw};
use common::token::{good_claims, hs256};
use common::world::{Builder, World};
use common::{bytes, eventually};
use serde_json::json;

const BIG: &str = "/v/seg-1.ts";
const SMALL: &str = "/v/small.bin";
/// Below the connection's 32 KiB write buffer with its head: written into
/// the socket directly from memory.
const MID: &str = "/v/mid.bin";

/// A node with a cache section of `cache` lines.
fn world(big: &[u8], cache: &str) -> Builder {
    World::builder()
        .object(&BIG[1..], big)
        .object(&SMALL[1..], &bytes(1024, 2))
        .object(&MID[1..], &bytes(30_000, 6))
        .tap()
        .cache(cache)
}

fn file_hits(m: &str) -> f64 {
    metric(m, "cdn_node_file_hits_total", &[])
}

/// Whether this kernel tells what the page cache holds (`cachestat`,
/// Linux 6.5), asked as the node asks it of a file just written: without
/// it no hit is sent from its file, and the node reads every hit as before.
fn kernel_tells_residency() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe");
    std::fs::write(&path, [0u8; 4096]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    cdn_node::cache::store::resident::cached(&file, 0, 4096)
}

/// A node with the default cache holding `big` at [`BIG`], GET until a
/// hit of it is sent from its file: the node, the target with the token,
/// and that answer's fields. `None`, said on stderr, when this kernel
/// cannot tell what the page cache holds (then the node sends no file, and
/// there is nothing to check).
async fn sending_files(big: &[u8]) -> Option<(World, String, Headers)> {
    if !kernel_tells_residency() {
        eprintln!("no cachestat on this kernel: the node sends no file; nothing to check");
        return None;
    }
    let w = world(big, "").start().await;
    let target = w.target(BIG);
    let (_, fields, body) = until_sent_from_file(&w, &target).await;
    assert!(body == big, "the first body sent from the file differs");
    Some((w, target, fields))
}

/// GETs `target` until a hit is sent from its file; returns that answer.
async fn until_sent_from_file(w: &World, target: &str) -> (u16, Headers, Vec<u8>) {
    let before = file_hits(&w.metrics().await);
    eventually(
        "a hit sent from its file",
        Duration::from_secs(10),
        || async move {
            let answer = raw(w.node.http, "GET", target, &[]).await;
            assert_eq!(answer.0, 200);
            (file_hits(&w.metrics().await) > before).then_some(answer)
        },
    )
    .await
}

/// A connection to `addr` whose receive buffer is 4 KiB: a large answer
/// fills the node's send buffer again and again.
async fn slow_conn(addr: std::net::SocketAddr) -> Conn {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    Conn::from_stream(socket.connect(addr).await.unwrap())
}

/// Drops every body file of the cache from the page cache.
fn evict_bodies(dir: &Path) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    for entry in files {
        if entry.extension().is_some_and(|e| e == "body") {
            let file = std::fs::File::open(&entry).unwrap();
            // Dirty pages stay: written back first.
            file.sync_all().unwrap();
            rustix::fs::fadvise(file.as_fd(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
        }
    }
}

/// A file hit's answer is the one Pingora's hit path gives the same
/// request (handed to it by a `Content-Length: 0`, which the lane never
/// takes): status, fields but `Date` and `Age`, and body; a HEAD sends
/// the head alone; a refused token is refused as on Pingora's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_hit_answers_as_pingoras_hit_path() {
    let big = bytes(1 << 20, 1);
    let Some((w, target, _)) = sending_files(&big).await else {
        return;
    };

    let before = w.metrics().await;
    let mut c = Conn::open(w.node.http).await;
    let from_file = c.ask("GET", &target, &[]).await;
    let read = c.ask("GET", &target, &[("content-length", "0")]).await;
    let head = c.ask("HEAD", &target, &[]).await;
    let after = w.metrics().await;
    assert_eq!(
        file_hits(&after) - file_hits(&before),
        1.0,
        "GET from the file"
    );
    let hits = |m: &str| metric(m, "cdn_node_cache_lookups_total", &[("result", "hit")]);
    assert_eq!(hits(&after) - hits(&before), 3.0, "three hits counted");
    assert_eq!((from_file.0, read.0, head.0), (200, 200, 200));
    assert_eq!(header(&from_file.1, "x-cache"), Some("HIT"));
    assert_eq!(header(&from_file.1, "content-length"), Some("1048576"));
    assert!(header(&from_file.1, "age").is_some());
    assert_eq!(lasting(from_file.1.clone()), lasting(read.1));
    assert_eq!(lasting(head.1), lasting(from_file.1));
    assert!(from_file.2 == big && read.2 == big, "a body differs");
    assert!(head.2.is_empty(), "a HEAD was sent a body");

    let expired = {
        let mut claims = good_claims("alice");
        claims["exp"] = json!(common::unix_now() - 3600);
        hs256(&claims)
    };
    let refused = c.ask("GET", &format!("{BIG}?jwt={expired}"), &[]).await;
    let by_proxy = c
        .ask(
            "GET",
            &format!("{BIG}?jwt={expired}"),
            &[("content-length", "0")],
        )
        .await;
    assert_eq!((refused.0, by_proxy.0), (401, 401));
    assert_eq!(lasting(refused.1), lasting(by_proxy.1));
    assert_eq!(refused.2, by_proxy.2);
    assert_eq!(
        file_hits(&w.metrics().await),
        file_hits(&after),
        "no file sent on a refusal"
    );
}

/// A body 16 times a small socket buffer, read slowly in small pieces:
/// the sends wait for the client again and again, every byte arrives in
/// order, and the same connection then gets its next answers (a HEAD, a
/// small hit, the big one again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_many_times_the_socket_buffer_goes_out_whole_to_a_slow_reader() {
    let big = bytes(8 << 20, 3);
    let Some((w, target, _)) = sending_files(&big).await else {
        return;
    };
    let before = file_hits(&w.metrics().await);
    let mut c = slow_conn(w.node.http).await;
    c.read_chunk = 1024;
    let (status, h, body) = c.ask("GET", &target, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), Some("8388608"));
    assert!(body == big, "the body differs");
    let (status, _, body) = c.ask("HEAD", &target, &[]).await;
    assert_eq!((status, body.len()), (200, 0));
    let (status, _, body) = c.ask("GET", &w.target(SMALL), &[]).await;
    assert_eq!((status, body), (200, bytes(1024, 2)));
    let (status, _, body) = c.ask("GET", &target, &[]).await;
    assert_eq!(status, 200);
    assert!(body == big, "the second body differs");
    assert_eq!(file_hits(&w.metrics().await) - before, 2.0);
}

/// What is not sent from a file is read as before: a body dropped from
/// the page cache, whole or in part (the node must not wait for the disk
/// on a worker thread), and every hit of a node with `cache.sendfile:
/// false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_not_in_the_page_cache_and_sendfile_off_are_read() {
    let big = bytes(4 << 20, 4);
    let Some((w, target, _)) = sending_files(&big).await else {
        return;
    };
    let before = file_hits(&w.metrics().await);
    evict_bodies(w.cache_dir());
    let mut c = Conn::open(w.node.http).await;
    // A range read from disk brings back a few pages, not the body.
    let (status, h, body) = c.ask("GET", &target, &[("range", "bytes=1000-1999")]).await;
    assert_eq!((status, header(&h, "x-cache")), (206, Some("HIT")));
    assert!(body == big[1000..2000]);
    let (status, h, body) = c.ask("GET", &target, &[]).await;
    assert_eq!((status, header(&h, "x-cache")), (200, Some("HIT")));
    assert!(body == big, "the body read from disk differs");
    assert_eq!(
        file_hits(&w.metrics().await),
        before,
        "nothing sent from a file"
    );
    // Read once, the body is in the page cache again: sent from it.
    let (status, _, body) = c.ask("GET", &target, &[]).await;
    assert_eq!(status, 200);
    assert!(body == big);
    assert_eq!(file_hits(&w.metrics().await) - before, 1.0);

    let off = world(&big, "  sendfile: false\n").start().await;
    let target = off.target(BIG);
    let mut c = Conn::open(off.node.http).await;
    for _ in 0..3 {
        let (status, _, body) = c.ask("GET", &target, &[]).await;
        assert_eq!(status, 200);
        assert!(body == big);
    }
    assert_eq!(file_hits(&off.metrics().await), 0.0, "sendfile is off");
    let hits = off
        .metric("cdn_node_cache_lookups_total", &[("result", "hit")])
        .await;
    assert_eq!(hits, 2.0);
}

/// A body memory may hold (`memory_object_max_size` above its size) is
/// copied into memory and written from there, never sent from its file;
/// written straight into the socket, it too goes out whole to a slow
/// reader, and the connection serves its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_memory_may_hold_is_written_from_memory() {
    let big = bytes(1 << 20, 5);
    let w = world(
        &big,
        "  memory_size: 64MiB\n  memory_object_max_size: 2MiB\n",
    )
    .start()
    .await;
    let target = w.target(BIG);
    let memory_hits = |m: &str| metric(m, "cdn_node_cache_memory_hits_total", &[]);
    let mut c = Conn::open(w.node.http).await;
    for _ in 0..4 {
        let (status, _, body) = c.ask("GET", &target, &[]).await;
        assert_eq!(status, 200);
        assert!(body == big);
    }
    let m = w.metrics().await;
    assert_eq!(file_hits(&m), 0.0, "sent from a file");
    assert!(memory_hits(&m) >= 1.0, "never written from memory");

    // To a slow reader, one after the other on one connection: a body
    // sent into the socket directly (below the write buffer) and one
    // written through the stream, twice, then a small one.
    let mid = bytes(30_000, 6);
    let w = &w;
    let mid = &mid;
    eventually(
        "the mid-sized body held in memory",
        Duration::from_secs(10),
        || async move {
            let before = memory_hits(&w.metrics().await);
            let (status, _, body) = raw(w.node.http, "GET", &w.target(MID), &[]).await;
            assert_eq!((status, body == *mid), (200, true));
            (memory_hits(&w.metrics().await) > before).then_some(())
        },
    )
    .await;
    let before = memory_hits(&w.metrics().await);
    let mut c = slow_conn(w.node.http).await;
    c.read_chunk = 1024;
    for _ in 0..2 {
        let (status, h, body) = c.ask("GET", &w.target(MID), &[]).await;
        assert_eq!((status, header(&h, "content-length")), (200, Some("30000")));
        assert!(body == *mid, "the body sent to a slow reader differs");
        let (status, h, body) = c.ask("GET", &target, &[]).await;
        assert_eq!(
            (status, header(&h, "content-length")),
            (200, Some("1048576"))
        );
        assert!(body == big, "the body written to a slow reader differs");
    }
    let m = w.metrics().await;
    assert_eq!(memory_hits(&m) - before, 4.0, "not written from memory");
    assert_eq!(file_hits(&m), 0.0, "sent from a file");
    let (status, _, body) = c.ask("GET", &w.target(SMALL), &[]).await;
    assert_eq!((status, body), (200, bytes(1024, 2)));
}

/// A range of a file hit (a player's `bytes=0-`, a seek, a suffix, an
/// `If-Range` that holds or not, one past the end) is answered from the
/// file as Pingora's path answers it: status, fields in order, bytes. A
/// range of several parts goes to Pingora's path, which frames it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_file_hit_answers_as_pingoras_hit_path() {
    let big = bytes(1 << 20, 6);
    let Some((w, target, whole)) = sending_files(&big).await else {
        return;
    };
    let etag = header(&whole, "etag").expect("an ETag").to_string();
    let len = big.len();
    // (Range, If-Range, status, the bytes sent, sent from the file)
    type Case<'a> = (&'a str, Option<&'a str>, u16, std::ops::Range<usize>, bool);
    let cases: &[Case] = &[
        ("bytes=0-", None, 206, 0..len, true),
        ("bytes=0-0", None, 206, 0..1, true),
        ("bytes=100-199", None, 206, 100..200, true),
        ("bytes=524288-", None, 206, 524_288..len, true),
        ("bytes=-500", None, 206, len - 500..len, true),
        ("bytes=1048000-2000000", None, 206, 1_048_000..len, true),
        ("bytes=100-199", Some(etag.as_str()), 206, 100..200, true),
        ("bytes=100-199", Some("\"another\""), 200, 0..len, true),
        ("bytes=2000000-", None, 416, 0..0, false),
        ("bytes=0-9,100-109", None, 206, 0..0, false),
        ("items=0-9", None, 200, 0..len, true),
    ];
    let mut c = Conn::open(w.node.http).await;
    for (range, if_range, status, span, from_file) in cases {
        let mut fields = vec![("range", *range)];
        if let Some(tag) = if_range {
            fields.push(("if-range", tag));
        }
        let case = format!("{range} {if_range:?}");
        let before = file_hits(&w.metrics().await);
        let lane = c.ask("GET", &target, &fields).await;
        let sent = file_hits(&w.metrics().await) - before;
        fields.push(("content-length", "0"));
        let path = c.ask("GET", &target, &fields).await;
        assert_eq!((lane.0, path.0), (*status, *status), "{case}");
        let expected = if *from_file { 1.0 } else { 0.0 };
        assert_eq!(sent, expected, "{case}: sent from the file");
        if range.contains(',') {
            // Pingora's path both times; each answer has its own boundary.
            let kind = header(&lane.1, "content-type").unwrap_or_default();
            assert!(kind.starts_with("multipart/byteranges"), "{case}: {kind}");
            continue;
        }
        assert_eq!(lasting(lane.1), lasting(path.1), "{case}");
        assert!(lane.2 == path.2, "{case}: the bodies differ");
        if !span.is_empty() {
            assert!(
                lane.2 == big[span.clone()],
                "{case}: not the bytes asked for"
            );
        }
    }
}

/// Clients that go away in the middle of a body sent from its file cost
/// nothing that lasts: the node keeps answering, and its open descriptors
/// (the body files, the sockets and the duplicates that waited on them)
/// come back to what they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_gone_mid_body_leave_nothing_open() {
    let big = bytes(8 << 20, 7);
    let Some((w, target, _)) = sending_files(&big).await else {
        return;
    };
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", w.node.pid()))
            .unwrap()
            .count()
    };
    let open_before = fds();
    let before = file_hits(&w.metrics().await);
    for _ in 0..20 {
        let mut c = slow_conn(w.node.http).await;
        let request = format!("GET {target} HTTP/1.1\r\nHost: cdn.example\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut c.stream, request.as_bytes())
            .await
            .unwrap();
        let mut some = vec![0u8; 64 * 1024];
        tokio::io::AsyncReadExt::read_exact(&mut c.stream, &mut some)
            .await
            .unwrap();
        // Dropped with most of the body unread: the node's send fails.
    }
    eventually("every send begun", Duration::from_secs(10), || async {
        (file_hits(&w.metrics().await) - before >= 20.0).then_some(())
    })
    .await;
    let (status, _, body) = raw(w.node.http, "GET", &target, &[]).await;
    assert_eq!(status, 200);
    assert!(body == big, "the body after the dropped clients differs");
    eventually(
        "the descriptors of the dropped sends closed",
        Duration::from_secs(10),
        || async { (fds() <= open_before).then_some(()) },
    )
    .await;
}
