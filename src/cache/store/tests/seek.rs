//! Seeking in complete objects.

use super::support::*;
use pingora_cache::storage::Storage;

#[tokio::test]
async fn seek_spans_are_end_exclusive_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = body(200_000);
    store_object(store, "/v/r.mp4", &data, 65_536).await;
    let (_, mut hit) = store
        .lookup(&key("/v/r.mp4"), &span())
        .await
        .unwrap()
        .unwrap();

    hit.seek(10, Some(20)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &data[10..20]);
    // Multipart: a later seek resets the span, even backwards.
    hit.seek(0, Some(1)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &data[..1]);
    hit.seek(150_000, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &data[150_000..]);
    // An end past the body is clipped; a start at or past it is refused.
    hit.seek(199_990, Some(1 << 40)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &data[199_990..]);
    assert!(hit.seek(200_000, None).is_err());
    assert!(hit.seek(10, Some(5)).is_err());
}
