//! Copies of small hot objects that this node forwards to their owner in
//! the PoP, kept in memory (never on disk) and answered here as memory hits
//! until the owner's freshness runs out.
//!
//! - Admission: a key is copied the second time it is forwarded within the
//!   doorkeeper's memory (a set of recently forwarded keys, cleared when it
//!   fills), so a one-off forward does not churn the copies.
//! - What is kept: a 200 with `Content-Length` at most the memory tier's
//!   object limit, no `Vary`, not a manifest (its URIs get each client's
//!   token), and stored by the cache policy (no `no-store`, `private`,
//!   `Set-Cookie`; the answer to a hop that carried the client's
//!   `Authorization` only with `public`, `s-maxage` or `must-revalidate`).
//!   Its freshness is the policy's lifetime less the owner's
//!   `Age`: what the owner has left.
//! - Purges: every purge this node applies (its admin API, a `PURGE` hop,
//!   the fleet's rules) removes the matching copies too, and for a minute
//!   an answer it names that the owner got before its time (an owner that
//!   has not applied it yet) is not copied.
//! - Budget: a quarter of `cache.memory_size`, beside the store's memory
//!   tier; the oldest copies go first when it is full; none when the
//!   memory tier is off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{AGE, CONTENT_LENGTH, VARY};
use pingora_cache::CacheKey;
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_http::ResponseHeader;

use crate::cache::engine::Engine;
use crate::cache::policy::{Decision, Policy};
use crate::cache::purge::{Scope, TimedPurge};
use crate::cache::store::MemoryHit;

/// The `X-Cache` value of an answer from a copy.
pub const HEADER_VALUE: &str = "HIT-COPY";
/// Keys the doorkeeper remembers before it starts over.
const SEEN_MAX: usize = 65_536;
/// How long the purges applied here are remembered: an owner that applies
/// one later still answers with the old object meanwhile, which is not
/// copied.
const RECENT_PURGES_FOR: Duration = Duration::from_secs(60);
/// How many of them, at most.
const RECENT_PURGES_MAX: usize = 1024;
/// What a copy's header and key count against the budget, besides its body.
const OVERHEAD: u64 = 512;

/// One forwarded answer, ready to send again.
pub struct Copy {
    /// The owner's header, prepared once: this node's cache status, `Age`
    /// in place, `Accept-Ranges`.
    header: ResponseHeader,
    body: Bytes,
    /// The owner's `Age` when the copy was kept, and when that was.
    age_then: Duration,
    kept_at: SystemTime,
    /// When the owner got the object from upstream, as its `Age` tells
    /// (rounded down to a second there, so a second earlier here): what
    /// timed purges compare.
    fetched_at: SystemTime,
    fresh_until: SystemTime,
    /// The cache key's text, which purges name.
    primary: Box<str>,
}

impl Copy {
    fn weight(&self) -> u64 {
        self.body.len() as u64 + self.primary.len() as u64 + OVERHEAD
    }
}

/// The copies, bounded by bytes, oldest out first.
struct Held {
    copies: HashMap<HashBinary, (u64, Copy)>,
    /// Keeping order; may name copies since replaced or removed, which
    /// eviction skips.
    order: VecDeque<(HashBinary, u64)>,
    bytes: u64,
}

impl Held {
    fn remove(&mut self, key: &HashBinary) {
        if let Some((_, old)) = self.copies.remove(key) {
            self.bytes -= old.weight();
        }
    }

    fn put(&mut self, key: HashBinary, id: u64, copy: Copy, capacity: u64) {
        let weight = copy.weight();
        if weight > capacity / 4 {
            return;
        }
        self.remove(&key);
        while self.bytes + weight > capacity {
            let Some((old, old_id)) = self.order.pop_front() else {
                break;
            };
            if self.copies.get(&old).is_some_and(|(i, _)| *i == old_id) {
                self.remove(&old);
            }
        }
        self.bytes += weight;
        self.copies.insert(key, (id, copy));
        self.order.push_back((key, id));
        if self.order.len() > 2 * self.copies.len() + 64 {
            let copies = &self.copies;
            self.order
                .retain(|(k, id)| copies.get(k).is_some_and(|(i, _)| i == id));
        }
    }
}

/// An answer being copied while it passes to the client.
pub enum Capture {
    /// The key is hot: copy the answer if it qualifies.
    Wanted,
    /// The answer qualified; its body so far.
    Filling(Box<Filling>),
}

pub struct Filling {
    header: ResponseHeader,
    body: BytesMut,
    expected: usize,
    age_then: Duration,
    fresh_until: SystemTime,
}

pub struct Copies {
    held: Mutex<Held>,
    seen: Mutex<HashSet<HashBinary>>,
    /// The purges applied lately, and when.
    recent: Mutex<VecDeque<(TimedPurge, SystemTime)>>,
    capacity: u64,
    max_object: u64,
    /// The cache status header the copies answer with.
    status_header: Option<String>,
    next_id: AtomicU64,
}

static COPIES: OnceLock<Copies> = OnceLock::new();

/// This process's copies, sized from the cache's settings on first use.
pub fn of(engine: &Engine) -> &'static Copies {
    COPIES.get_or_init(|| {
        let config = &engine.config;
        let max_object = crate::cache::store::hit::INLINE_MAX.min(config.max_object_size);
        Copies::new(
            config.memory_size / 4,
            max_object,
            config.status_header.clone(),
        )
    })
}

/// Removes the copies a purge names, when this process keeps any; how many
/// went.
pub fn purge(scope: &Scope) -> usize {
    let now = SystemTime::now();
    let purge = TimedPurge {
        scope: scope.clone(),
        before: now,
    };
    COPIES.get().map_or(0, |c| c.purged(&[purge], now))
}

/// Removes the copies the timed purges name whose object the owner got
/// before their time; how many went.
pub fn purge_before(purges: &[TimedPurge]) -> usize {
    let now = SystemTime::now();
    COPIES.get().map_or(0, |c| c.purged(purges, now))
}

/// Whether a purge's scope names the object of `primary`.
fn names(scope: &Scope, primary: &str) -> bool {
    match scope {
        Scope::One { path, query } => primary == crate::cache::key::cache_key(path, query),
        Scope::Prefix(prefix) => primary.starts_with(prefix.as_str()),
    }
}

impl Copies {
    pub fn new(capacity: u64, max_object: u64, status_header: Option<String>) -> Copies {
        Copies {
            held: Mutex::new(Held {
                copies: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            seen: Mutex::new(HashSet::new()),
            recent: Mutex::new(VecDeque::new()),
            capacity,
            max_object,
            status_header,
            next_id: AtomicU64::new(1),
        }
    }

    fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The fresh copy of `key`, as a memory hit (its accesses are nobody's
    /// to tell). An expired copy is dropped.
    pub fn hit(&self, key: &CacheKey, now: SystemTime) -> Option<MemoryHit> {
        if !self.enabled() {
            return None;
        }
        let hash = key.combined_bin();
        let mut held = self.held.lock().ok()?;
        if held.copies.get(&hash)?.1.fresh_until < now {
            held.remove(&hash);
            return None;
        }
        let (_, copy) = held.copies.get(&hash)?;
        let since = now.duration_since(copy.kept_at).unwrap_or_default();
        Some(MemoryHit {
            header: std::sync::Arc::new(copy.header.clone()),
            wire: None,
            age: copy.age_then + since,
            body: copy.body.clone(),
            accesses: None,
        })
    }

    /// Whether the answer to a forward of `key` is to be copied: the key was
    /// forwarded before, lately.
    pub fn wanted(&self, key: &CacheKey) -> Option<Capture> {
        if !self.enabled() {
            return None;
        }
        let hash = key.combined_bin();
        let mut seen = self.seen.lock().ok()?;
        if seen.remove(&hash) {
            return Some(Capture::Wanted);
        }
        if seen.len() >= SEEN_MAX {
            seen.clear();
        }
        seen.insert(hash);
        None
    }

    /// The owner's answer header: whether it qualifies for a copy.
    /// `authorized`: the hop carried the client's `Authorization`.
    pub fn start(
        &self,
        policy: &Policy,
        resp: &ResponseHeader,
        authorized: bool,
        now: SystemTime,
    ) -> Capture {
        match self.qualifies(policy, resp, authorized, now) {
            Some(filling) => Capture::Filling(Box::new(filling)),
            None => Capture::Wanted,
        }
    }

    fn qualifies(
        &self,
        policy: &Policy,
        resp: &ResponseHeader,
        authorized: bool,
        now: SystemTime,
    ) -> Option<Filling> {
        if resp.status != http::StatusCode::OK
            || resp.headers.contains_key(VARY)
            || crate::manifest::is_manifest_answer(resp)
        {
            return None;
        }
        let expected: usize = resp
            .headers
            .get(CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if expected as u64 > self.max_object {
            return None;
        }
        let Decision::Store { fresh_until, .. } = policy.decide_authorized(resp, authorized, now)
        else {
            return None;
        };
        if fresh_until <= now {
            return None;
        }
        let age_then = resp
            .headers
            .get(AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        Some(Filling {
            header: self.prepare(resp).ok()?,
            body: BytesMut::with_capacity(expected),
            expected,
            age_then,
            fresh_until,
        })
    }

    /// The header every answer from the copy carries.
    fn prepare(&self, resp: &ResponseHeader) -> pingora::Result<ResponseHeader> {
        let mut header = resp.clone();
        for hop in ["connection", "keep-alive", "transfer-encoding"] {
            header.remove_header(hop);
        }
        header.set_version(http::Version::HTTP_11);
        header.insert_header(AGE, 0)?;
        crate::range::advertise(&mut header);
        if let Some(name) = &self.status_header {
            header.insert_header(name.clone(), HEADER_VALUE)?;
        }
        Ok(header)
    }

    /// A chunk of the owner's body; at its end, the copy is kept when the
    /// body was whole.
    pub fn fill(&self, capture: &mut Capture, key: &CacheKey, chunk: Option<&Bytes>, end: bool) {
        let Capture::Filling(filling) = capture else {
            return;
        };
        if let Some(chunk) = chunk {
            if filling.body.len() + chunk.len() > filling.expected {
                *capture = Capture::Wanted;
                return;
            }
            filling.body.extend_from_slice(chunk);
        }
        if !end {
            return;
        }
        let done = std::mem::replace(capture, Capture::Wanted);
        if let Capture::Filling(f) = done
            && f.body.len() == f.expected
        {
            self.keep(key, *f, SystemTime::now());
        }
    }

    fn keep(&self, key: &CacheKey, f: Filling, now: SystemTime) {
        let Some(primary) = key.primary_key_str() else {
            return;
        };
        // The latest the owner can have got it (its `Age` is rounded down).
        let got = now - f.age_then;
        if self.purged_lately(primary, got, now) {
            return;
        }
        let copy = Copy {
            header: f.header,
            body: f.body.freeze(),
            age_then: f.age_then,
            kept_at: now,
            fetched_at: now - f.age_then - Duration::from_secs(1),
            fresh_until: f.fresh_until,
            primary: primary.into(),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut held) = self.held.lock() {
            held.put(key.combined_bin(), id, copy, self.capacity);
        }
    }

    /// Removes the copies `purges` name whose object the owner got before
    /// their time, and remembers them for a while.
    fn purged(&self, purges: &[TimedPurge], now: SystemTime) -> usize {
        if let Ok(mut recent) = self.recent.lock() {
            for p in purges {
                if recent.len() >= RECENT_PURGES_MAX {
                    recent.pop_front();
                }
                recent.push_back((p.clone(), now));
            }
        }
        self.remove_where(|primary, fetched_at| {
            purges
                .iter()
                .any(|p| fetched_at < p.before && names(&p.scope, primary))
        })
    }

    /// Whether a purge applied lately names `primary` as the owner got it
    /// at `got`.
    fn purged_lately(&self, primary: &str, got: SystemTime, now: SystemTime) -> bool {
        let Ok(mut recent) = self.recent.lock() else {
            return true;
        };
        while recent
            .front()
            .is_some_and(|(_, at)| *at + RECENT_PURGES_FOR < now)
        {
            recent.pop_front();
        }
        recent
            .iter()
            .any(|(p, _)| got < p.before && names(&p.scope, primary))
    }

    /// Removes the copies `gone` names (by key text and time fetched).
    fn remove_where(&self, gone: impl Fn(&str, SystemTime) -> bool) -> usize {
        let Ok(mut held) = self.held.lock() else {
            return 0;
        };
        let before = held.copies.len();
        let mut freed = 0;
        held.copies.retain(|_, (_, copy)| {
            let keep = !gone(&copy.primary, copy.fetched_at);
            if !keep {
                freed += copy.weight();
            }
            keep
        });
        held.bytes -= freed;
        before - held.copies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            default_ttl: Duration::from_secs(60),
            override_ttl: None,
            not_found_ttl: Duration::from_secs(10),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            plain_origin: false,
        }
    }

    fn answer(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            h.append_header(name.to_string(), *value).unwrap();
        }
        h
    }

    fn key(path: &str) -> CacheKey {
        crate::cache::key::object(path, "")
    }

    fn copies() -> Copies {
        Copies::new(1 << 20, 1024, Some("x-cache".into()))
    }

    /// Copies `body` as the answer `resp` to a forward of `path`.
    fn copy(c: &Copies, path: &str, resp: &ResponseHeader, body: &'static [u8], now: SystemTime) {
        let mut capture = c.start(&policy(), resp, false, now);
        let f = match capture {
            Capture::Filling(ref mut f) => f,
            Capture::Wanted => panic!("{path}: not copied"),
        };
        f.body.extend_from_slice(body);
        let Capture::Filling(f) = capture else {
            unreachable!()
        };
        c.keep(&key(path), *f, now);
    }

    #[test]
    fn a_key_is_wanted_the_second_time_it_is_forwarded() {
        let c = copies();
        assert!(c.wanted(&key("/a")).is_none());
        assert!(c.wanted(&key("/b")).is_none());
        assert!(matches!(c.wanted(&key("/a")), Some(Capture::Wanted)));
        assert!(c.wanted(&key("/a")).is_none(), "starts over once wanted");
        assert!(Copies::new(0, 1024, None).wanted(&key("/a")).is_none());
        assert!(Copies::new(0, 1024, None).wanted(&key("/a")).is_none());
    }

    #[test]
    fn only_whole_fresh_shareable_small_answers_qualify() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (200, &[("content-length", "5")], true),
            (
                200,
                &[("content-length", "5"), ("cache-control", "max-age=9")],
                true,
            ),
            (200, &[("content-length", "5"), ("age", "59")], true),
            (200, &[("content-length", "5"), ("age", "60")], false),
            (
                200,
                &[("content-length", "5"), ("cache-control", "no-store")],
                false,
            ),
            (
                200,
                &[("content-length", "5"), ("cache-control", "private")],
                false,
            ),
            (
                200,
                &[("content-length", "5"), ("cache-control", "no-cache")],
                false,
            ),
            (
                200,
                &[("content-length", "5"), ("set-cookie", "a=b")],
                false,
            ),
            (200, &[("content-length", "5"), ("vary", "accept")], false),
            (200, &[("content-length", "1025")], false),
            (200, &[], false),
            (206, &[("content-length", "5")], false),
            (404, &[("content-length", "5")], false),
            (
                200,
                &[
                    ("content-length", "5"),
                    ("content-type", "application/vnd.apple.mpegurl"),
                ],
                false,
            ),
        ];
        let c = copies();
        for (status, fields, want) in cases {
            let got = matches!(
                c.start(&policy(), &answer(*status, fields), false, now),
                Capture::Filling(_)
            );
            assert_eq!(got, *want, "{status} {fields:?}");
        }
        // The answer to a hop that carried the client's Authorization.
        let authorized: &[(&str, bool)] = &[
            ("max-age=9", false),
            ("public, max-age=9", true),
            ("s-maxage=9", true),
            ("must-revalidate, max-age=9", true),
        ];
        for (cc, want) in authorized {
            let resp = answer(200, &[("content-length", "5"), ("cache-control", cc)]);
            let got = matches!(c.start(&policy(), &resp, true, now), Capture::Filling(_));
            assert_eq!(got, *want, "authorized, {cc}");
        }
    }

    #[test]
    fn a_copy_lives_as_long_as_the_owner_had_left() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = copies();
        let resp = answer(
            200,
            &[("content-length", "5"), ("age", "50"), ("x-cache", "HIT")],
        );
        copy(&c, "/a", &resp, b"hello", now);
        let hit = c.hit(&key("/a"), now + Duration::from_secs(10)).unwrap();
        assert_eq!(hit.age, Duration::from_secs(60));
        assert_eq!(&hit.body[..], b"hello");
        assert_eq!(hit.header.headers["x-cache"], HEADER_VALUE);
        assert!(c.hit(&key("/a"), now + Duration::from_secs(11)).is_none());
        assert!(c.hit(&key("/a"), now).is_none(), "dropped once expired");
    }

    #[test]
    fn a_body_that_is_not_whole_is_not_kept() {
        let now = SystemTime::now();
        let c = copies();
        let resp = answer(200, &[("content-length", "5")]);
        let mut short = c.start(&policy(), &resp, false, now);
        c.fill(
            &mut short,
            &key("/a"),
            Some(&Bytes::from_static(b"hel")),
            true,
        );
        let mut long = c.start(&policy(), &resp, false, now);
        c.fill(
            &mut long,
            &key("/b"),
            Some(&Bytes::from_static(b"hello!")),
            true,
        );
        let mut whole = c.start(&policy(), &resp, false, now);
        c.fill(
            &mut whole,
            &key("/c"),
            Some(&Bytes::from_static(b"hel")),
            false,
        );
        c.fill(
            &mut whole,
            &key("/c"),
            Some(&Bytes::from_static(b"lo")),
            false,
        );
        c.fill(&mut whole, &key("/c"), None, true);
        assert!(c.hit(&key("/a"), now).is_none());
        assert!(c.hit(&key("/b"), now).is_none());
        assert!(c.hit(&key("/c"), now).is_some());
    }

    #[test]
    fn an_old_object_answered_after_a_purge_is_not_copied() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = copies();
        let purge = TimedPurge {
            scope: Scope::Prefix("/v/".into()),
            before: now,
        };
        c.purged(&[purge], now);
        // An owner that has not applied it yet: its object is 10 s old.
        let old = answer(200, &[("content-length", "1"), ("age", "10")]);
        copy(&c, "/v/a", &old, b"x", now + Duration::from_secs(2));
        assert!(c.hit(&key("/v/a"), now + Duration::from_secs(2)).is_none());
        // Fetched anew since, or not named: copied.
        let new = answer(200, &[("content-length", "1"), ("age", "1")]);
        copy(&c, "/v/b", &new, b"x", now + Duration::from_secs(2));
        copy(&c, "/w/a", &old, b"x", now + Duration::from_secs(2));
        assert!(c.hit(&key("/v/b"), now + Duration::from_secs(2)).is_some());
        assert!(c.hit(&key("/w/a"), now + Duration::from_secs(2)).is_some());
        // Forgotten after a while.
        let later = now + RECENT_PURGES_FOR + Duration::from_secs(5);
        copy(&c, "/v/a", &old, b"x", later);
        assert!(c.hit(&key("/v/a"), later).is_some());
    }

    #[test]
    fn purges_remove_the_copies_they_name() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = copies();
        let resp = answer(200, &[("content-length", "1")]);
        for path in ["/v/a", "/v/b", "/w/a"] {
            copy(&c, path, &resp, b"x", now);
        }
        let one = Scope::One {
            path: "/v/a".into(),
            query: String::new(),
        };
        assert_eq!(c.remove_where(|p, _| names(&one, p)), 1);
        let timed = |before| TimedPurge {
            scope: Scope::Prefix("/v/".into()),
            before,
        };
        let earlier = [timed(now - Duration::from_secs(1))];
        assert_eq!(
            c.remove_where(|p, t| earlier.iter().any(|x| t < x.before && names(&x.scope, p))),
            0,
            "fetched at the purge's time: spared"
        );
        assert_eq!(
            c.remove_where(|p, _| names(&Scope::Prefix("/v/".into()), p)),
            1
        );
        assert!(c.hit(&key("/v/b"), now).is_none());
        assert!(c.hit(&key("/w/a"), now).is_some());
    }
}
