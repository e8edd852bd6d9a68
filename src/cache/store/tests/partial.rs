//! Streaming partial writes: readers follow a fill, wait for bytes, and get
//! an error (never a clean end) when the fill fails.

use super::support::*;
use bytes::Bytes;
use pingora_cache::storage::{HitHandler, MissHandler, Storage};
use std::time::Duration;

/// A short real-time wait: long enough for a reader that could make progress
/// to make it. The store never sleeps, so this only proves waiting.
const PENDING: Duration = Duration::from_millis(50);

async fn start(
    store: &'static crate::cache::store::DiskStore,
    path: &str,
    len: Option<u64>,
) -> MissHandler {
    store
        .get_miss_handler(&key(path), &meta(len), &span())
        .await
        .expect("miss handler")
}

async fn own_reader(
    store: &'static crate::cache::store::DiskStore,
    path: &str,
    miss: &MissHandler,
) -> HitHandler {
    store
        .lookup_streaming_write(&key(path), miss.streaming_write_tag(), &span())
        .await
        .expect("lookup_streaming_write")
        .expect("the writer's own fill")
        .1
}

async fn assert_pending(hit: &mut HitHandler) {
    assert!(
        tokio::time::timeout(PENDING, hit.read_body())
            .await
            .is_err(),
        "read_body should wait for the writer"
    );
}

#[tokio::test]
async fn readers_join_the_fill_and_wait_for_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(200_000);
    let mut miss = start(store, "/v/a.mp4", Some(data.len() as u64)).await;
    let mut own = own_reader(store, "/v/a.mp4", &miss).await;
    // A concurrent request finds the fill in progress instead of a miss.
    let (_, mut joined) = store
        .lookup(&key("/v/a.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.entry_id(), miss.entry_id());
    assert!(!joined.should_count_access());
    assert_eq!(store.stats().fills_in_progress, 1);

    assert_pending(&mut joined).await;
    miss.write_body(Bytes::copy_from_slice(&data[..1000]), false)
        .await
        .unwrap();
    assert_eq!(joined.read_body().await.unwrap().unwrap(), &data[..1000]);
    assert_pending(&mut joined).await;

    let reader = tokio::spawn(async move {
        read_all(&mut joined)
            .await
            .map(|b| [&data[..1000], &b[..]].concat())
    });
    let data = body(200_000);
    for part in data[1000..].chunks(30_000) {
        miss.write_body(Bytes::copy_from_slice(part), false)
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    miss.write_body(Bytes::new(), true).await.unwrap();
    assert_eq!(read_all(&mut own).await.unwrap(), data);
    miss.finish().await.unwrap();
    committed(store).await;
    assert_eq!(reader.await.unwrap().unwrap(), data);
    assert_eq!(fetch(store, "/v/a.mp4").await.unwrap(), data);
    assert_eq!(store.stats().fills_in_progress, 0);
}

/// How a fill can fail.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Dropped,
    ShortAtEof,
    ShortAtFinish,
    TooLarge,
    LongerThanContentLength,
}

async fn failing_fill(failure: Failure) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_object_size = 1000;
    let store = open_with(config);
    let len = match failure {
        Failure::TooLarge => None,
        _ => Some(100),
    };
    let mut miss = start(store, "/v/f.mp4", len).await;
    let mut own = own_reader(store, "/v/f.mp4", &miss).await;
    let (_, mut joined) = store
        .lookup(&key("/v/f.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    miss.write_body(Bytes::from(vec![7u8; 60]), false)
        .await
        .unwrap();
    assert_eq!(joined.read_body().await.unwrap().unwrap().len(), 60);
    // This reader is waiting when the failure happens.
    let waiting = tokio::spawn(async move { read_all(&mut joined).await });
    tokio::task::yield_now().await;

    match failure {
        Failure::Dropped => drop(miss),
        Failure::ShortAtEof => {
            assert!(
                miss.write_body(Bytes::from(vec![7u8; 10]), true)
                    .await
                    .is_err()
            );
        }
        Failure::ShortAtFinish => assert!(miss.finish().await.is_err()),
        Failure::TooLarge => {
            assert!(
                miss.write_body(Bytes::from(vec![7u8; 2000]), false)
                    .await
                    .is_err()
            );
            // The writer side stops caching: further writes fail too.
            assert!(
                miss.write_body(Bytes::from(vec![7u8; 1]), false)
                    .await
                    .is_err()
            );
        }
        Failure::LongerThanContentLength => {
            assert!(
                miss.write_body(Bytes::from(vec![7u8; 41]), false)
                    .await
                    .is_err()
            );
        }
    }
    assert!(
        waiting.await.unwrap().is_err(),
        "{failure:?}: waiting reader must fail"
    );
    assert!(
        read_all(&mut own).await.is_err(),
        "{failure:?}: own reader must fail"
    );
    assert!(
        store
            .lookup(&key("/v/f.mp4"), &span())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        files_under(dir.path()).is_empty(),
        "{failure:?}: {:?}",
        files_under(dir.path())
    );
    let stats = store.stats();
    assert_eq!(stats.aborted_fills, 1, "{failure:?}");
    assert_eq!(stats.fills_in_progress, 0);
    assert_eq!(stats.objects_stored, 0);
}

#[tokio::test]
async fn dropped_handler_fails_readers() {
    failing_fill(Failure::Dropped).await;
}

#[tokio::test]
async fn short_body_at_eof_fails_readers() {
    failing_fill(Failure::ShortAtEof).await;
}

#[tokio::test]
async fn short_body_at_finish_fails_readers() {
    failing_fill(Failure::ShortAtFinish).await;
}

#[tokio::test]
async fn chunked_body_past_max_size_fails_readers() {
    failing_fill(Failure::TooLarge).await;
}

#[tokio::test]
async fn body_longer_than_content_length_fails_readers() {
    failing_fill(Failure::LongerThanContentLength).await;
}

#[tokio::test]
async fn streaming_write_tag_selects_the_right_fill() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut first = start(store, "/same", Some(3)).await;
    let mut second = start(store, "/same", Some(3)).await;
    assert_ne!(first.entry_id(), second.entry_id());
    let mut r1 = own_reader(store, "/same", &first).await;
    let mut r2 = own_reader(store, "/same", &second).await;
    first.write_body("111".into(), true).await.unwrap();
    second.write_body("222".into(), true).await.unwrap();
    assert_eq!(read_all(&mut r1).await.unwrap(), b"111");
    assert_eq!(read_all(&mut r2).await.unwrap(), b"222");
    first.finish().await.unwrap();
    committed(store).await;
    second.finish().await.unwrap();
    committed(store).await;
    assert_eq!(fetch(store, "/same").await.unwrap(), b"222");
    // A tag of no fill is an error, never `None` (Pingora panics on `None`).
    let bogus = 42u64.to_be_bytes();
    assert!(
        store
            .lookup_streaming_write(&key("/same"), Some(&bogus), &span())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn seek_into_a_fill_waits_for_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(100);
    let mut miss = start(store, "/v/s.mp4", Some(100)).await;
    let (_, mut hit) = store
        .lookup(&key("/v/s.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    assert!(hit.can_seek());
    assert!(hit.seek(100, None).is_err(), "start past Content-Length");
    hit.seek(40, Some(60)).unwrap();
    miss.write_body(Bytes::copy_from_slice(&data[..45]), false)
        .await
        .unwrap();
    assert_eq!(hit.read_body().await.unwrap().unwrap(), &data[40..45]);
    assert_pending(&mut hit).await;
    miss.write_body(Bytes::copy_from_slice(&data[45..]), false)
        .await
        .unwrap();
    assert_eq!(hit.read_body().await.unwrap().unwrap(), &data[45..60]);
    assert!(hit.read_body().await.unwrap().is_none());
    // A later seek resets the span.
    hit.seek(90, None).unwrap();
    assert_eq!(hit.read_body().await.unwrap().unwrap(), &data[90..]);
    assert_pending(&mut hit).await; // the writer has not said eof yet
    miss.write_body(Bytes::new(), true).await.unwrap();
    assert!(hit.read_body().await.unwrap().is_none());
    miss.finish().await.unwrap();
    committed(store).await;
}

/// A fill gathers its chunks into fewer writes whoever reads it: a reader
/// gets each chunk as soon as it is accepted (from memory), the temp file
/// gets them a batch at a time, and a reader that starts later reads the
/// written part from the file and the rest from memory; what is stored is
/// the body byte for byte. (Paused clock: the chunks held stay held until
/// the batch is full, whatever the machine's speed.)
#[tokio::test(start_paused = true)]
async fn a_fill_is_written_in_batches_and_read_as_it_comes() {
    use crate::cache::store::batch;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(1_200_000);
    let chunks: Vec<&[u8]> = data.chunks(1000).collect();
    let mut miss = start(store, "/v/b.mp4", Some(data.len() as u64)).await;
    let (_, mut early) = store
        .lookup(&key("/v/b.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    for (i, chunk) in chunks[..50].iter().enumerate() {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
        // Each chunk is readable at once, none of them is in the file.
        assert_eq!(early.read_body().await.unwrap().unwrap(), chunk);
        assert_pending(&mut early).await;
        assert!(in_temp_file(store, 1000 * (i + 1)).iter().all(|b| *b == 0));
    }
    // The batch fills up: its write starts, without the request waiting
    // for it, and it is read from the file after.
    // One fill under way in this process: large batches.
    assert_eq!(batch::limit(), batch::LARGE_BATCH);
    let full = (batch::LARGE_BATCH as usize).div_ceil(1000);
    assert!(1000 * (full + 10) < data.len());
    for chunk in &chunks[50..full] {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    in_temp_file_soon(store, &data[..1000 * full]).await;
    for chunk in &chunks[full..full + 10] {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    assert!(
        in_temp_file(store, 1000 * (full + 10))[1000 * full..]
            .iter()
            .all(|b| *b == 0)
    );
    // A reader from the start: the file's bytes, then memory's.
    let (_, mut late) = store
        .lookup(&key("/v/b.mp4"), &span())
        .await
        .unwrap()
        .unwrap();
    let mut read = Vec::new();
    while read.len() < 1000 * (full + 10) {
        read.extend_from_slice(&late.read_body().await.unwrap().unwrap());
    }
    assert_eq!(read, &data[..1000 * (full + 10)]);
    assert_pending(&mut late).await;
    for chunk in &chunks[full + 10..] {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    miss.write_body(Bytes::new(), true).await.unwrap();
    read.extend_from_slice(&read_all(&mut late).await.unwrap());
    assert_eq!(read, data);
    let mut early_read = data[..50_000].to_vec();
    early_read.extend_from_slice(&read_all(&mut early).await.unwrap());
    assert_eq!(early_read, data);
    miss.finish().await.unwrap();
    committed(store).await;
    assert_eq!(fetch(store, "/v/b.mp4").await.unwrap(), data);

    // No reader at all: written in batches, stored whole.
    let mut miss = start(store, "/v/c.mp4", Some(data.len() as u64)).await;
    for chunk in &chunks {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    miss.finish().await.unwrap();
    committed(store).await;
    assert_eq!(fetch(store, "/v/c.mp4").await.unwrap(), data);
}

/// Waits (10 s at most) until the one fill's temp file begins with `want`:
/// a batch is written on the blocking pool, not by the request.
async fn in_temp_file_soon(store: &crate::cache::store::DiskStore, want: &[u8]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while in_temp_file(store, want.len()) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch's {} bytes never reached the temp file",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The first `len` body bytes of the one fill's temp file, as the file
/// holds them now (zeros where nothing was written: it is allocated whole).
fn in_temp_file(store: &crate::cache::store::DiskStore, len: usize) -> Vec<u8> {
    use crate::cache::store::format::BODY_PREAMBLE_LEN;
    use crate::cache::store::layout::BODY_EXT;
    use std::os::unix::fs::FileExt;
    let bodies: Vec<_> = std::fs::read_dir(store.layout.own_tmp())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == BODY_EXT))
        .collect();
    assert_eq!(bodies.len(), 1, "one fill's temp file: {bodies:?}");
    let file = std::fs::File::open(&bodies[0]).unwrap();
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file
            .read_at(&mut buf[got..], BODY_PREAMBLE_LEN + got as u64)
            .unwrap()
        {
            0 => break,
            n => got += n,
        }
    }
    buf
}
