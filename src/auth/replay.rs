//! The replay cache (`auth.replay_protection`): the `jti` of every token let through, kept
//! until that token expires, so that the same token is refused the second time.
//!
//! An entry is dropped only once its token has expired both by the wall clock and by the
//! time elapsed since it was recorded (a monotonic clock): a wall clock stepped forward and
//! back again (the token within its lifetime again) still finds the entry.
//!
//! Keyed on `jti`, never on the token text (signatures can be malleable). Bounded: when a
//! shard is full, expired entries go first, then those nearest to their expiry (whose tokens
//! could then be used again until they expire: size the cache for the tokens issued within
//! a token lifetime). Unlike the verified-token cache it is never emptied when keys or the
//! denylist change. It is per node: a token may be used once on each node.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards, to keep two cores from queuing on one lock.
const SHARDS: usize = 8;

/// The longest a token's remaining lifetime is counted on the monotonic
/// clock (token lifetimes are at most 31 days).
const MAX_REMAINING: Duration = Duration::from_secs(400 * 86_400);

/// When the token of a recorded `jti` expires.
#[derive(Clone, Copy)]
struct Seen {
    /// Unix second after which it is expired (`exp` plus leeway).
    until: u64,
    /// The same moment on the monotonic clock, as it stood when recorded.
    deadline: Instant,
}

impl Seen {
    /// Expired by both clocks.
    fn expired(&self, now: u64, mono: Instant) -> bool {
        self.until < now && self.deadline <= mono
    }
}

#[derive(Default)]
struct Shard {
    /// `jti` -> when its token expires.
    seen: HashMap<Box<str>, Seen>,
    /// The same entries, by expiry, for eviction.
    by_expiry: BTreeSet<(u64, Box<str>)>,
}

impl Shard {
    fn remove_first(&mut self) {
        if let Some((_, jti)) = self.by_expiry.pop_first() {
            self.seen.remove(&jti);
        }
    }
}

/// Remembers `jti` values until their tokens expire.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache of about `capacity` entries (at least one a shard).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// Records `jti`, whose token is good until `until`. False when it was already recorded
    /// and has not expired: the token is being used again.
    pub fn first_use(&self, jti: &str, until: u64, now: u64) -> bool {
        self.first_use_at(jti, until, now, Instant::now())
    }

    /// `first_use` at wall time `now` (Unix seconds) and monotonic time `mono`.
    fn first_use_at(&self, jti: &str, until: u64, now: u64, mono: Instant) -> bool {
        let index = (self.hasher.hash_one(jti) % SHARDS as u64) as usize;
        let mut shard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seen) = shard.seen.get(jti).copied() {
            if !seen.expired(now, mono) {
                return false;
            }
            shard.by_expiry.remove(&(seen.until, Box::from(jti)));
            shard.seen.remove(jti);
        }
        while shard.by_expiry.first().is_some_and(|(_, first)| {
            shard
                .seen
                .get(first)
                .is_none_or(|seen| seen.expired(now, mono))
        }) {
            shard.remove_first();
        }
        while shard.seen.len() >= self.per_shard {
            shard.remove_first();
        }
        let remaining = Duration::from_secs(until.saturating_sub(now)).min(MAX_REMAINING);
        let seen = Seen {
            until,
            deadline: mono.checked_add(remaining).unwrap_or(mono),
        };
        let key: Box<str> = jti.into();
        shard.by_expiry.insert((until, key.clone()));
        shard.seen.insert(key, seen);
        true
    }

    /// How many entries are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).seen.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The monotonic clock `now - 100` seconds after a fixed start: both
    /// clocks agree.
    fn mono(now: u64) -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now) + Duration::from_secs(now - 100)
    }

    impl ReplayCache {
        /// `first_use` with the monotonic clock agreeing with `now`.
        fn use_at(&self, jti: &str, until: u64, now: u64) -> bool {
            self.first_use_at(jti, until, now, mono(now))
        }
    }

    #[test]
    fn a_jti_is_refused_until_its_token_expires() {
        let cache = ReplayCache::new(100);
        let cases = [
            ("a", 110, 100, true),
            ("a", 110, 100, false),
            ("a", 110, 110, false),
            ("b", 110, 105, true),
            ("a", 200, 111, true),
            ("a", 200, 150, false),
        ];
        for (jti, until, now, want) in cases {
            assert_eq!(cache.use_at(jti, until, now), want, "{jti} at {now}");
        }
    }

    #[test]
    fn stays_bounded_and_forgets_the_nearest_expiry_first() {
        let cache = ReplayCache::new(64);
        for i in 0..10_000u64 {
            assert!(cache.use_at(&format!("j{i}"), 1_000_000 + i, 100));
            assert!(cache.len() <= 64, "{}", cache.len());
        }
        assert!(!cache.use_at("j9999", 2_000_000, 100), "the newest stays");
        // Expired entries go without pushing live ones out.
        let cache = ReplayCache::new(64);
        assert!(cache.use_at("live", 1_000, 100));
        for i in 0..200u64 {
            assert!(cache.use_at(&format!("short{i}"), 100 + i, 100 + i));
        }
        assert!(
            cache.len() <= 16,
            "expired entries are dropped: {}",
            cache.len()
        );
        assert!(!cache.use_at("live", 1_000, 300), "live entry kept");
    }

    #[test]
    fn a_wall_clock_stepped_forward_and_back_keeps_the_entry() {
        let cache = ReplayCache::new(100);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert!(cache.first_use_at("a", 10_100, 10_000, at(0)));
        // An hour ahead: expired by the wall clock, not by the time elapsed;
        // another token's use does not drop it either.
        assert!(!cache.first_use_at("a", 10_100, 13_605, at(5)));
        assert!(cache.first_use_at("b", 20_000, 13_605, at(5)));
        // Back: the token is within its lifetime again, and still used.
        assert!(!cache.first_use_at("a", 10_100, 10_006, at(6)));
        // An hour back, past its real expiry: expired by the time elapsed,
        // not by the wall clock.
        assert!(!cache.first_use_at("a", 10_100, 6_550, at(150)));
        // Expired by both: the `jti` may be recorded again.
        assert!(cache.first_use_at("a", 10_400, 10_200, at(200)));
        assert!(!cache.first_use_at("a", 10_400, 10_201, at(201)));
    }
}
