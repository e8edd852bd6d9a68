//! The access log file and its rotation: `mv` + SIGUSR1, the next request's
//! line lands in the new file, and no line is lost across the two files.

mod common;

use std::path::Path;
use std::time::Duration;

use common::eventually;
use common::http::metric;
use common::world::World;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn rotation_with_mv_and_sigusr1_loses_no_line() {
    let w = World::builder()
        .object("courses/101/a.mp4", b"aaaa")
        .configure(|o| o.extra_yaml = "log:\n  access_file: requests.log\n".into())
        .start()
        .await;
    let node = &w.node;
    let log = node.dir.path().join("requests.log");
    let rotated = node.dir.path().join("requests.log.1");
    let target = |i: usize| format!("/courses/101/a.mp4?n={i}");

    // Lines are written after the response; wait for each.
    let mut sent = 0;
    for _ in 0..5 {
        assert_eq!(w.get(&target(sent)).await.0, 200);
        sent += 1;
    }
    eventually("5 lines in the file", Duration::from_secs(10), || {
        let log = log.clone();
        async move { (lines(&log).len() == 5).then_some(()) }
    })
    .await;
    // Stdout keeps its lines too.
    assert_eq!(node.access_log().len(), 5);

    std::fs::rename(&log, &rotated).unwrap();
    // Requests between the move and the signal go to the moved file.
    assert_eq!(w.get(&target(sent)).await.0, 200);
    sent += 1;
    node.signal("USR1");
    eventually("the reopen to be counted", Duration::from_secs(10), || {
        let node = &node;
        async move {
            let text = node.metrics().await;
            (metric(
                &text,
                "cdn_node_access_log_reopens_total",
                &[("result", "ok")],
            ) == 1.0)
                .then_some(())
        }
    })
    .await;
    assert!(log.exists(), "the new file was not created");

    for _ in 0..3 {
        assert_eq!(w.get(&target(sent)).await.0, 200);
        sent += 1;
    }
    eventually(
        "every line in one of the two files",
        Duration::from_secs(10),
        || {
            let (log, rotated) = (log.clone(), rotated.clone());
            async move { (lines(&log).len() + lines(&rotated).len() == sent).then_some(()) }
        },
    )
    .await;
    let new = lines(&log);
    assert_eq!(
        new.len(),
        3,
        "the lines after the signal go to the new file"
    );
    let mut paths: Vec<String> = lines(&rotated)
        .into_iter()
        .chain(new)
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), sent, "a line was lost or duplicated");
    assert!(paths.iter().all(|p| p.contains("jwt=REDACTED")));
}

#[tokio::test]
async fn buffered_lines_are_written_at_a_fast_shutdown() {
    let mut w = World::builder()
        .object("courses/101/a.mp4", b"aaaa")
        // Nothing is flushed by time during the test.
        .configure(|o| {
            o.extra_yaml = "log:\n  access_file: requests.log\n  access_flush_ms: 60000\n".into()
        })
        .start()
        .await;
    let log = w.node.dir.path().join("requests.log");
    for i in 0..3 {
        assert_eq!(w.get(&format!("/courses/101/a.mp4?n={i}")).await.0, 200);
    }
    assert!(lines(&log).is_empty(), "lines were not buffered");
    w.node.signal("INT");
    assert!(w.node.exited(Duration::from_secs(10)).await.success());
    assert_eq!(lines(&log).len(), 3);
    assert_eq!(w.node.access_log().len(), 3, "stdout lost lines");
}
