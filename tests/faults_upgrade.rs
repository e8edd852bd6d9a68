//! Two processes on one disk cache during a graceful upgrade, both filling
//! objects: the process handing over keeps filling what it had started
//! (and what it still accepts in its last seconds) while the new one has
//! scanned the store and fills too, different objects and the same one.
//! No object is lost or torn: every fill committed by either process is
//! whole, read through the node and kept by the start-up scan after a
//! restart.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::http::{header, metric};
use common::tap::Mode;
use common::world::World;
use common::{bytes, eventually};

const OBJECTS: usize = 8;
const LEN: usize = 1536 * 1024;
/// Response bytes the tap passes on each origin connection before holding
/// the rest: fills stay in progress until the test lets them go.
const HELD_AFTER: u64 = 256 * 1024;

fn path(i: usize) -> String {
    format!("/v/o{i}.mp4")
}

/// The temp folder process `pid` made in the store (`tmp/<pid>-...`).
fn own_tmp(cache: &Path, pid: u32) -> Option<PathBuf> {
    let prefix = format!("{pid}-");
    std::fs::read_dir(cache.join("tmp"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
}

/// Fills in progress of process `pid`: body files in its temp folder.
fn fills_of(cache: &Path, pid: u32) -> usize {
    own_tmp(cache, pid)
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "body"))
                .count()
        })
        .unwrap_or(0)
}

async fn wait_fills(cache: &Path, pid: u32, n: usize, what: &str) {
    eventually(what, Duration::from_secs(20), || {
        let got = fills_of(cache, pid);
        async move { (got >= n).then_some(()) }
    })
    .await;
}

/// GETs `i` on a connection of its own, on a task: the whole answer or
/// what went wrong.
fn client(w: &World, i: usize) -> tokio::task::JoinHandle<Result<(u16, Vec<u8>), String>> {
    let url = w.url(&path(i));
    tokio::spawn(async move {
        let resp = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| e.to_string())?
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_vec()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_filling_one_store_during_an_upgrade_lose_and_tear_nothing() {
    // Object 0 is small: its probe GET brings it whole, and no connection
    // of the proxy's pool has carried bytes before the fills below (the
    // tap holds a connection's bytes past `HELD_AFTER`).
    let objects: Vec<Vec<u8>> = (0..OBJECTS)
        .map(|i| bytes(if i == 0 { 48 * 1024 } else { LEN }, 100 + i as u64))
        .collect();
    let named: Vec<(String, Vec<u8>)> = (0..OBJECTS)
        .map(|i| (path(i)[1..].to_string(), objects[i].clone()))
        .collect();
    let mut w = World::builder()
        .objects(&named)
        .tap()
        .cache("")
        .configure(|o| {
            // Long enough for the fills the old process holds to end well.
            o.server_extra =
                "  grace_period_seconds: 15\n  graceful_shutdown_timeout_seconds: 5\n".into();
        })
        .start()
        .await;
    let cache = w.cache_dir().to_path_buf();
    let whole = |i: usize, got: &Result<(u16, Vec<u8>), String>| match got {
        Ok((200, body)) => assert!(*body == objects[i], "object {i}: other bytes"),
        other => panic!(
            "object {i}: {:?}",
            other.as_ref().map(|(s, b)| (*s, b.len()))
        ),
    };

    // Stored before the upgrade; and the records of the objects filled
    // below, so that their fills are the only temp files.
    let (status, _, got) = w.get(&path(0)).await;
    assert_eq!(status, 200);
    assert!(got == objects[0]);
    for i in [1, 2, 3, 7] {
        assert_eq!(w.request("HEAD", &path(i), &[]).await.0, 200);
    }

    // The old process starts filling 1, 2 and 7, held halfway.
    w.tap().set_mode(Mode::HoldAfter(HELD_AFTER));
    let old_pid = w.node.pid();
    let mut old_side = vec![(1, client(&w, 1)), (2, client(&w, 2)), (7, client(&w, 7))];
    wait_fills(&cache, old_pid, 3, "the old process's three fills").await;

    // The new process starts, scans the store and takes the sockets over.
    let mut old = w.upgrade(|_| {}).await;
    let new_pid = w.node.pid();
    old.signal("QUIT");
    eventually(
        "the new process to open the store",
        Duration::from_secs(20),
        || {
            let made = own_tmp(&cache, new_pid).is_some();
            async move { made.then_some(()) }
        },
    )
    .await;
    // The old process's fills are still there: the scan left them alone.
    assert_eq!(fills_of(&cache, old_pid), 3, "the new process removed them");

    // The new process fills 7 too, and 3. For its last seconds the old one
    // still accepts connections on the shared sockets: a request it takes
    // joins its own fill of 7, or starts one of 3; asked again until the
    // new process fills both.
    let mut either_side = Vec::new();
    for (n, i) in [7, 3].into_iter().enumerate() {
        eventually(
            &format!("the new process to fill object {i}"),
            Duration::from_secs(20),
            || {
                either_side.push((i, client(&w, i)));
                let got = fills_of(&cache, new_pid);
                async move { (got > n).then_some(()) }
            },
        )
        .await;
    }
    assert!(
        old.is_running(),
        "the old process left before its fills ended"
    );

    // Everything flows: every fill, in both processes, ends and commits.
    w.tap().set_mode(Mode::Forward);
    for (i, c) in old_side.drain(..).chain(either_side.drain(..)) {
        whole(i, &c.await.unwrap());
    }
    old.exited(Duration::from_secs(40)).await;
    let stderr = format!("{}\n{}", old.stderr(), w.node.stderr());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(fills_of(&cache, new_pid), 0);

    // Through the new process: what it scanned, and what it filled.
    for i in [0, 3, 7] {
        let (status, headers, got) = w.get(&path(i)).await;
        assert_eq!(status, 200);
        assert!(got == objects[i], "object {i}");
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "object {i}");
    }
    let m = w.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_write_errors_total", &[]), 0.0);

    // A restart scans what both processes committed: the old process's
    // fills of 1 and 2 (after the new one had scanned) are there, whole,
    // and of the two copies of 7 one is kept.
    w.restart_gracefully().await;
    let asked = w.tap().origin_requests();
    for i in [0, 1, 2, 3, 7] {
        let (status, headers, got) = w.get(&path(i)).await;
        assert_eq!(status, 200);
        assert!(got == objects[i], "object {i}");
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "object {i}");
    }
    assert_eq!(w.tap().origin_requests(), asked, "{:#?}", w.tap().heads());
    // Five objects and their records (1, 2, 3 and 7 were HEAD first; 0
    // and its record came with its probe GET).
    let m = w.metrics().await;
    assert_eq!(metric(&m, "cdn_node_cache_stored_objects", &[]), 10.0);

    // Every object read whole, and kept across another restart.
    for (i, object) in objects.iter().enumerate() {
        let (status, _, got) = w.get(&path(i)).await;
        assert_eq!(status, 200);
        assert!(got == *object, "object {i}");
    }
    w.restart_gracefully().await;
    for (i, object) in objects.iter().enumerate() {
        let (status, headers, got) = w.get(&path(i)).await;
        assert_eq!(status, 200);
        assert!(got == *object, "object {i}");
        assert_eq!(header(&headers, "x-cache"), Some("HIT"), "object {i}");
    }
    let m = w.metrics().await;
    assert_eq!(
        metric(&m, "cdn_node_cache_stored_objects", &[]),
        2.0 * OBJECTS as f64
    );
}
