//! A counter that each thread adds to in its own cache line, summed when
//! read.
//!
//! One shared `AtomicU64` added to on every hit by every worker thread moves
//! its cache line from core to core on each add; here a thread writes only
//! its own stripe, so adds from two threads never contend. Reads (metrics
//! scrapes) are rare and sum the stripes. The sum is exact: every add lands
//! in some stripe, and threads beyond the number of stripes share them.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter: enough for the worker threads of a node; more
/// threads than this share stripes (still correct, only contended).
const STRIPES: usize = 16;

/// One stripe, alone in its cache line (128 bytes: the adjacent-line
/// prefetcher pairs 64-byte lines).
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

#[derive(Default)]
pub struct StripedCounter {
    stripes: [Stripe; STRIPES],
}

/// The stripe of the calling thread, handed out in turn as threads first
/// add.
fn my_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    MINE.with(|mine| {
        mine.get().unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            mine.set(Some(n));
            n
        })
    })
}

impl StripedCounter {
    pub fn add(&self, n: u64) {
        self.stripes[my_stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_adds_of_every_thread() {
        let counter = StripedCounter::default();
        std::thread::scope(|s| {
            for t in 0..(STRIPES as u64 + 3) {
                let counter = &counter;
                s.spawn(move || {
                    for _ in 0..1000 {
                        counter.add(t);
                    }
                });
            }
        });
        let threads = STRIPES as u64 + 3;
        assert_eq!(counter.get(), 1000 * threads * (threads - 1) / 2);
    }

    #[test]
    fn a_thread_keeps_its_stripe() {
        assert_eq!(my_stripe(), my_stripe());
        let counter = StripedCounter::default();
        counter.add(2);
        counter.add(3);
        let used = counter
            .stripes
            .iter()
            .filter(|s| s.0.load(Ordering::Relaxed) > 0)
            .count();
        assert_eq!((used, counter.get()), (1, 5));
    }
}
