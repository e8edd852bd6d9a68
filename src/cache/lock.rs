//! Pingora's cache lock, counted: a miss that finds another request
//! fetching the same key waits for that fill instead of asking the origin
//! itself (Varnish's waiting list, nginx's `proxy_cache_lock`). How many
//! did is reported at scrape time as
//! `cdn_node_collapsed_requests_total{on="fill"}`.

use std::sync::atomic::{AtomicU64, Ordering};

use pingora_cache::CacheKey;
use pingora_cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked, WritePermit};
use pingora_cache::trace::Span;

/// A [`CacheLock`] that counts the readers it makes wait.
#[derive(Debug)]
pub struct CountingLock {
    inner: Box<CacheLock>,
    waits: AtomicU64,
}

impl CountingLock {
    pub fn new(inner: Box<CacheLock>) -> CountingLock {
        CountingLock {
            inner,
            waits: AtomicU64::new(0),
        }
    }

    /// Misses told to wait for another request's fill, since start.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

impl CacheKeyLock for CountingLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        let locked = self.inner.lock(key, stale_writer);
        if !locked.is_write() {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        locked
    }

    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus) {
        self.inner.release(key, permit, reason);
    }

    fn trace_lock_wait(
        &self,
        span: &mut Span,
        read_lock: &pingora_cache::lock::ReadLock,
        lock_status: LockStatus,
    ) {
        self.inner.trace_lock_wait(span, read_lock, lock_status);
    }

    fn custom_lock_status(&self, custom_no_cache: &'static str) -> LockStatus {
        self.inner.custom_lock_status(custom_no_cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_second_miss_for_a_key_being_fetched_is_counted_as_waiting() {
        let lock = CountingLock::new(CacheLock::new_boxed(Duration::from_secs(5)));
        let key = CacheKey::new("/v/a.mp4", "");
        let other = CacheKey::new("/v/b.mp4", "");
        let release = |key: &CacheKey, locked: Locked| match locked {
            Locked::Write(permit) => lock.release(key, permit, LockStatus::Done),
            Locked::Read(_) => panic!("a reader where a writer was expected"),
        };
        let first = lock.lock(&key, false);
        assert!(first.is_write());
        let another = lock.lock(&other, false);
        assert!(another.is_write(), "another key waits");
        release(&other, another);
        assert!(!lock.lock(&key, false).is_write());
        assert!(!lock.lock(&key, false).is_write());
        assert_eq!(lock.waits(), 2);
        release(&key, first);
        let again = lock.lock(&key, false);
        assert!(again.is_write(), "released: a new fill");
        release(&key, again);
        assert_eq!(lock.waits(), 2);
    }
}
