//! Each worker thread's own copies of the hottest small objects: a fresh
//! hit on one touches no memory another thread writes.
//!
//! A memory hit through the index takes the index's and the memory tier's
//! locks, and the answer it builds shares the stored header's values and
//! the body with every other thread: each of those counts, added and taken
//! away on every hit, moves a cache line between cores. A copy here is the
//! thread's own (header values and body copied once, when the copy is
//! made), so its hits only read shared memory: the object's `retired` flag,
//! which the index sets when it lets go of the object.
//!
//! A copy is made when a memory hit finds an object the memory tier calls
//! hot (read at least twice lately). It answers while the object is fresh
//! and not retired; then the hit goes back to the index, which decides
//! (revalidation, a newer version, a fill in progress, a purge). Copies
//! belong to one store ([`ThreadCopies`]): a thread never answers for a
//! store from another store's copies.
//!
//! The eviction manager hears of a copy's hits in batches, every
//! [`REPORT_EVERY`] hits or after [`REPORT_AFTER`], whichever comes first
//! (what Varnish's `lru_interval` does for the same reason). Hits still
//! unreported when a copy goes are not told: at most `REPORT_EVERY - 1` per
//! copy.
//!
//! Bounded per thread by bytes (bodies plus [`HEADER_WEIGHT`] each), and
//! replaced by CLOCK as the memory tier is; once the budget is full, new
//! copies replace old ones at a bounded rate ([`CHURN_WINDOW`]). A retired
//! copy goes when its thread next looks it up, or when the hand passes it:
//! until then it still counts against its thread's budget.

use super::index::Complete;
use super::memory::{MemoryTier, Weighed};
use super::memory_hit::{Accesses, MemoryHit};
use super::meta_decode::View;
use super::wire::Wire;
use bytes::Bytes;
use http::HeaderValue;
use pingora_cache::CacheEntryKey;
use pingora_cache::key::HashBinary;
use pingora_http::ResponseHeader;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Hits a copy gathers before the eviction manager is told of them.
pub const REPORT_EVERY: u32 = 32;
/// Longest a copy's hits wait before the eviction manager is told of them.
pub const REPORT_AFTER: Duration = Duration::from_secs(1);
/// What a copy counts against the budget besides its body: its header, the
/// object's key and the bookkeeping.
pub const HEADER_WEIGHT: u64 = 512;
/// A thread whose budget is full makes copies in place of others for at
/// most a budget's worth of bytes per window: a set of hot objects larger
/// than the budget costs at most that much copying, not a copy per hit.
pub const CHURN_WINDOW: Duration = Duration::from_secs(1);

/// One thread's copy of an object.
pub struct ThreadCopy {
    /// The index's object: only its `retired` flag is read on a hit.
    object: Arc<Complete>,
    /// The stored header with what the caller adds to every hit of it.
    header: Arc<ResponseHeader>,
    /// Its HTTP/1 form, when hits can be written from it.
    wire: Option<Arc<Wire>>,
    body: Bytes,
    epoch: SystemTime,
    fresh_until: SystemTime,
    entry: CacheEntryKey,
    weight: usize,
    /// Hits not yet told to the eviction manager, and when it was last told.
    unreported: u32,
    reported_at: SystemTime,
}

impl Weighed for ThreadCopy {
    fn weight(&self) -> u64 {
        self.body.len() as u64 + HEADER_WEIGHT
    }
}

impl ThreadCopy {
    /// A copy of `object` (`view` its decoded meta) whose answers carry
    /// `header` and `body`, both copied so that nothing of them is shared.
    /// Made on a hit at `now`, which it answers.
    pub fn new(
        object: Arc<Complete>,
        view: &View<'_>,
        header: &ResponseHeader,
        body: &Bytes,
        now: SystemTime,
    ) -> (ThreadCopy, MemoryHit) {
        let header = own_header(header);
        let copy = ThreadCopy {
            entry: object.eviction_key(),
            weight: object.eviction_weight(),
            object,
            wire: Wire::of(&header).map(Arc::new),
            header: Arc::new(header),
            body: Bytes::copy_from_slice(body),
            epoch: view.epoch,
            fresh_until: view.fresh_until,
            unreported: 0,
            reported_at: now,
        };
        let hit = copy.answer(now, Some(copy.accesses(1)));
        (copy, hit)
    }

    fn accesses(&self, requests: u32) -> Accesses {
        Accesses {
            entry: self.entry.clone(),
            weight: self.weight,
            requests,
        }
    }

    fn answer(&self, now: SystemTime, accesses: Option<Accesses>) -> MemoryHit {
        MemoryHit {
            header: self.header.clone(),
            wire: self.wire.clone(),
            age: now.duration_since(self.epoch).unwrap_or_default(),
            body: self.body.clone(),
            accesses,
        }
    }

    /// The answer of a hit at `now`, and the hits to tell when it is time.
    fn hit(&mut self, now: SystemTime) -> MemoryHit {
        self.unreported += 1;
        let due = self.unreported >= REPORT_EVERY
            || now
                .duration_since(self.reported_at)
                .map_or(true, |waited| waited >= REPORT_AFTER);
        let accesses = due.then(|| {
            let told = self.accesses(self.unreported);
            self.unreported = 0;
            self.reported_at = now;
            told
        });
        self.answer(now, accesses)
    }
}

/// A copy of `header` that shares no value or name with it: every field is
/// written anew, in the same order and the same case.
pub fn own_header(header: &ResponseHeader) -> ResponseHeader {
    // Copying what a header already holds cannot fail: its names and values
    // were valid when it was built. Should it fail all the same, the shared
    // header does.
    copy_fields(header).unwrap_or_else(|_| header.clone())
}

fn copy_fields(header: &ResponseHeader) -> pingora_error::Result<ResponseHeader> {
    let own_value = |v: &HeaderValue| {
        let mut owned = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
        owned.set_sensitive(v.is_sensitive());
        owned
    };
    let fields = header.headers.len();
    let mut out = if header.has_case() {
        let mut out = ResponseHeader::build(header.status, Some(fields))?;
        for (name, value) in header.case_header_iter() {
            out.append_header(Bytes::copy_from_slice(name.as_slice()), own_value(value))?;
        }
        out
    } else {
        let mut out = ResponseHeader::build_no_case(header.status, Some(fields))?;
        for (name, value) in &header.headers {
            let name = Bytes::copy_from_slice(name.as_str().as_bytes());
            out.append_header(name, own_value(value))?;
        }
        out
    };
    out.set_reason_phrase(header.get_reason_phrase())?;
    out.set_version(header.version);
    Ok(out)
}

/// A store's side of its threads' copies: which store it is, the budget
/// of each thread, and the bytes all its threads' copies hold.
pub struct ThreadCopies {
    /// This store among the stores of the process: a thread's copies name
    /// the store they are of.
    store: u64,
    /// Bytes of copies each thread may keep (0: none).
    budget: u64,
    /// Bytes held by every thread's copies of this store, moved when a
    /// thread keeps or drops a copy (not on hits).
    bytes: Arc<AtomicU64>,
}

/// The copies one thread keeps, of one store.
struct Copies {
    store: u64,
    held: MemoryTier<ThreadCopy>,
    bytes: Arc<AtomicU64>,
    /// Bytes of copies made in place of others since `window_start`.
    replaced: u64,
    window_start: SystemTime,
}

impl Copies {
    fn new(owner: &ThreadCopies, now: SystemTime) -> Copies {
        Copies {
            store: owner.store,
            held: MemoryTier::new(owner.budget),
            bytes: owner.bytes.clone(),
            replaced: 0,
            window_start: now,
        }
    }

    /// Whether a copy of `weight` bytes may be made at `now`: always while
    /// the budget has room, and otherwise for at most a budget's worth of
    /// bytes per [`CHURN_WINDOW`].
    fn admits(&mut self, weight: u64, budget: u64, now: SystemTime) -> bool {
        if self.held.bytes() + weight <= budget {
            return true;
        }
        let over = now
            .duration_since(self.window_start)
            .map_or(true, |passed| passed >= CHURN_WINDOW);
        if over {
            self.window_start = now;
            self.replaced = 0;
        }
        if self.replaced + weight > budget {
            return false;
        }
        self.replaced += weight;
        true
    }

    /// Runs `change` on the copies held and moves the store's byte count by
    /// what it changed.
    fn account<R>(&mut self, change: impl FnOnce(&mut MemoryTier<ThreadCopy>) -> R) -> R {
        let before = self.held.bytes();
        let out = change(&mut self.held);
        let after = self.held.bytes();
        if after >= before {
            self.bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
        out
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        self.bytes.fetch_sub(self.held.bytes(), Ordering::Relaxed);
    }
}

thread_local! {
    static COPIES: RefCell<Option<Copies>> = const { RefCell::new(None) };
}

impl ThreadCopies {
    pub fn new(budget: u64) -> ThreadCopies {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ThreadCopies {
            store: NEXT.fetch_add(1, Ordering::Relaxed),
            budget,
            bytes: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Bytes held by the copies of every thread.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The answer of this thread's copy of `key`, when it has one that is
    /// fresh at `now` and not retired. A retired copy is dropped.
    pub fn hit(&self, key: &HashBinary, now: SystemTime) -> Option<MemoryHit> {
        COPIES.with_borrow_mut(|mine| {
            let mine = mine.as_mut().filter(|f| f.store == self.store)?;
            let copy = mine.held.get(key, None)?.value;
            if copy.object.retired.is_set() {
                let id = copy.object.id;
                mine.account(|copies| copies.remove(key, id));
                return None;
            }
            // Fresh up to and at `fresh_until`, as the index path has it.
            (copy.fresh_until >= now).then(|| copy.hit(now))
        })
    }

    /// Whether this thread may make a copy of a body of `body_len` bytes at
    /// `now` (see [`CHURN_WINDOW`]); when it may, the allowance is taken.
    pub fn admits(&self, body_len: usize, now: SystemTime) -> bool {
        let weight = body_len as u64 + HEADER_WEIGHT;
        COPIES.with_borrow_mut(|mine| match mine {
            Some(f) if f.store == self.store => f.admits(weight, self.budget, now),
            // No copies of this store yet: room for any.
            _ => true,
        })
    }

    /// Keeps `copy`, made at `now`, as this thread's copy of `key`.
    pub fn keep(&self, key: HashBinary, copy: ThreadCopy, now: SystemTime) {
        COPIES.with_borrow_mut(|mine| {
            if mine.as_ref().is_some_and(|f| f.store != self.store) {
                *mine = None;
            }
            let mine = mine.get_or_insert_with(|| Copies::new(self, now));
            mine.account(|copies| copies.put(key, copy.object.id, copy));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(h: &ResponseHeader) -> Vec<u8> {
        let mut buf = Vec::new();
        h.header_to_h1_wire(&mut buf);
        buf
    }

    /// Every field's bytes in `a` live elsewhere than `b`'s.
    fn shares_nothing(a: &ResponseHeader, b: &ResponseHeader) -> bool {
        a.headers
            .values()
            .zip(b.headers.values())
            .all(|(x, y)| x.as_bytes().as_ptr() != y.as_bytes().as_ptr())
    }

    #[test]
    fn an_own_header_is_the_same_header_on_the_wire_and_shares_nothing() {
        let fields = [
            ("Content-Type", "video/mp4"),
            ("content-length", "1024"),
            ("ETag", "\"abc\""),
            ("x-amz-meta-Course", "rust-101"),
            ("X-Cache", "HIT"),
            ("vary", "a"),
            ("Vary", "b"),
        ];
        let mut cased = ResponseHeader::build(200, None).unwrap();
        let mut plain = ResponseHeader::build_no_case(200, None).unwrap();
        for (name, value) in fields {
            cased.append_header(name.to_string(), value).unwrap();
            plain.append_header(name.to_string(), value).unwrap();
        }
        let mut odd = ResponseHeader::build(404, None).unwrap();
        odd.set_reason_phrase(Some("Gone Fishing")).unwrap();
        odd.set_version(http::Version::HTTP_10);
        odd.append_header("Set-Cookie".to_string(), "a=b").unwrap();
        for original in [cased, plain, odd] {
            let copy = own_header(&original);
            assert_eq!(wire(&copy), wire(&original));
            assert_eq!(copy.has_case(), original.has_case());
            assert_eq!(copy.status, original.status);
            assert_eq!(copy.version, original.version);
            assert_eq!(copy.get_reason_phrase(), original.get_reason_phrase());
            assert_eq!(copy.headers, original.headers);
            assert!(shares_nothing(&copy, &original));
        }
    }
}
