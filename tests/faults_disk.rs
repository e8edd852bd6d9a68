//! The cache's disk failing under the real node: a filesystem with less
//! room than an object (whose fill, with its space reserved up front, is
//! refused before it starts instead of failing when the disk fills up
//! halfway), a filesystem remounted read-only, a cache folder removed at
//! run time. Clients are served whole from the origin whatever the disk
//! does, nothing truncated is ever stored, the metrics say what happened,
//! and nothing panics.
//!
//! The first two need a small tmpfs (`common::tmpfs`): they are skipped,
//! with a `skipped:` line, where the tests may not mount one (not root),
//! except under CI.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http::{header, metric};
use common::tmpfs::Tmpfs;
use common::world::World;
use common::{bytes, eventually};

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(m) = entry.metadata() {
            out.push((path.display().to_string(), m.len()));
        }
    }
    out
}

/// Asserts the node's stderr has no panic.
fn no_panic(w: &World) {
    let stderr = w.node.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// GETs `path` and checks the answer is the whole `body`; its cache status.
async fn whole(w: &World, path: &str, body: &[u8]) -> String {
    let (status, headers, got) = w.get(path).await;
    assert_eq!(status, 200, "{path}");
    assert_eq!(got.len(), body.len(), "{path}: a truncated answer");
    assert!(got == body, "{path}: other bytes");
    header(&headers, "x-cache").unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_too_small_for_an_object_never_truncates_it() {
    // Declared first, dropped last: unmounted after the node has stopped.
    let Some(disk) = Tmpfs::mount("4m", "a cache disk too small for an object") else {
        return;
    };
    let big = bytes(6 * 1024 * 1024, 1);
    let small = bytes(200_000, 2);
    let w = World::builder()
        .object("v/big.mp4", &big)
        .object("v/small.mp4", &small)
        .tap()
        // A free-space floor low enough for the fill to start.
        .cache_in(disk.path(), "  min_free_space: 4KiB\n")
        .start()
        .await;
    for n in 1..=2 {
        // Served whole, and never kept: a miss each time.
        assert_eq!(whole(&w, "/v/big.mp4", &big).await, "MISS", "request {n}");
    }
    let m = w.metrics().await;
    assert_eq!(
        metric(&m, "cdn_node_cache_refused_fills_total", &[]),
        2.0,
        "{m}"
    );
    // No body of it on the disk, whole or truncated; no temp file left.
    // The record is committed just after the answer: once it is there.
    let on_disk = eventually("the record committed", Duration::from_secs(10), || async {
        let on_disk = files(disk.path());
        let bodies = on_disk.iter().filter(|(p, _)| p.ends_with(".body"));
        (bodies.count() >= 1).then_some(on_disk)
    })
    .await;
    let bodies: Vec<_> = on_disk
        .iter()
        .filter(|(p, _)| p.ends_with(".body"))
        .collect();
    assert_eq!(
        bodies.len(),
        1,
        "the big object's record only: {on_disk:#?}"
    );
    assert!(bodies[0].1 < 1024, "{on_disk:#?}");
    // The node keeps filling objects that fit.
    assert_eq!(whole(&w, "/v/small.mp4", &small).await, "MISS");
    assert_eq!(whole(&w, "/v/small.mp4", &small).await, "HIT");
    no_panic(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_cache_disk_is_served_around() {
    let Some(disk) = Tmpfs::mount("32m", "a cache disk remounted read-only") else {
        return;
    };
    let a = bytes(300_000, 3);
    let b = bytes(300_000, 4);
    let tiny = bytes(3000, 5);
    let w = World::builder()
        .object("v/a.mp4", &a)
        .object("v/b.mp4", &b)
        .object("v/tiny.mp4", &tiny)
        .cache_in(disk.path(), "")
        .start()
        .await;
    assert_eq!(whole(&w, "/v/a.mp4", &a).await, "MISS");
    assert_eq!(w.metric("cdn_node_cache_writable", &[]).await, 1.0);
    // Committed (no file left open for writing, which would keep the
    // filesystem from being remounted read-only): the object and its record.
    eventually(
        "the fill to be committed",
        Duration::from_secs(10),
        || async { (w.metric("cdn_node_cache_stored_objects", &[]).await == 2.0).then_some(()) },
    )
    .await;

    disk.set_read_only(true);
    assert_eq!(w.metric("cdn_node_cache_writable", &[]).await, 0.0);
    // What is stored is still served.
    assert_eq!(whole(&w, "/v/a.mp4", &a).await, "HIT");
    // New objects are served from the origin, and not kept.
    for _ in 0..2 {
        assert_eq!(whole(&w, "/v/b.mp4", &b).await, "MISS");
        assert_eq!(whole(&w, "/v/tiny.mp4", &tiny).await, "MISS");
    }
    // Two fills refused by the filesystem each time: each object and its
    // record.
    assert_eq!(
        w.metric("cdn_node_cache_write_errors_total", &[]).await,
        8.0
    );

    disk.set_read_only(false);
    assert_eq!(w.metric("cdn_node_cache_writable", &[]).await, 1.0);
    assert_eq!(whole(&w, "/v/b.mp4", &b).await, "MISS");
    assert_eq!(whole(&w, "/v/b.mp4", &b).await, "HIT");
    no_panic(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_cache_folder_is_served_around_until_a_restart() {
    let a = bytes(300_000, 6);
    let b = bytes(300_000, 7);
    let mut w = World::builder()
        .object("v/a.mp4", &a)
        .object("v/b.mp4", &b)
        .cache("")
        .start()
        .await;
    assert_eq!(whole(&w, "/v/a.mp4", &a).await, "MISS");
    assert_eq!(whole(&w, "/v/a.mp4", &a).await, "HIT");
    assert_eq!(w.metric("cdn_node_cache_writable", &[]).await, 1.0);
    // The fill is committed after its answer (the HIT may come from the
    // finished fill): the folder is removed once nothing writes in it.
    w.stored(2.0).await;

    let dir = w.cache_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).expect("remove the cache folder");
    assert_eq!(w.metric("cdn_node_cache_writable", &[]).await, 0.0);
    // Its objects are gone: fetched again, and served whole.
    assert_eq!(whole(&w, "/v/a.mp4", &a).await, "MISS");
    for _ in 0..2 {
        assert_eq!(whole(&w, "/v/b.mp4", &b).await, "MISS");
    }
    // `a`'s fill (its record is still known), then `b` and its record
    // twice.
    assert_eq!(
        w.metric("cdn_node_cache_write_errors_total", &[]).await,
        5.0
    );
    assert!(!dir.exists(), "the folder came back on its own");
    no_panic(&w);

    // A restart makes the folder again.
    w.restart().await;
    assert_eq!(w.metric("cdn_node_cache_writable", &[]).await, 1.0);
    assert_eq!(whole(&w, "/v/b.mp4", &b).await, "MISS");
    assert_eq!(whole(&w, "/v/b.mp4", &b).await, "HIT");
}
