//! The series every request counts itself in, found once each.
//!
//! `with_label_values` hashes the label values and takes the family's lock
//! on every call; the child it returns shares its value with the family, so
//! one kept child is the same series. Children are still made on first use,
//! as before: the exposition shows only the series that have counted
//! something. Nothing removes children from these families, which would
//! leave a kept child counting outside them.

use std::sync::OnceLock;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

use crate::cache::status::CacheStatus;

/// `status_class` label values, by [`class_index`].
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

const CACHE_STATUSES: usize = CacheStatus::ALL.len();
const LOOKUPS: usize = CacheStatus::LOOKUPS.len();

/// Index in [`STATUS_CLASSES`] of a response status; 0 and other
/// non-statuses are `none`.
pub fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

#[derive(Default)]
pub struct PerRequest {
    requests: [[OnceLock<IntCounter>; CACHE_STATUSES]; STATUS_CLASSES.len()],
    durations: [OnceLock<Histogram>; CACHE_STATUSES],
    lookups: [OnceLock<IntCounter>; LOOKUPS],
}

impl PerRequest {
    /// One answered request in `requests` (by status class and cache
    /// status) and its time in `durations` (by cache status).
    pub fn request(
        &self,
        requests: &IntCounterVec,
        durations: &HistogramVec,
        status: u16,
        cache_status: CacheStatus,
        seconds: f64,
    ) {
        let class = class_index(status);
        let cache = cache_status.index();
        let label = cache_status.as_str();
        self.requests[class][cache]
            .get_or_init(|| requests.with_label_values(&[STATUS_CLASSES[class], label]))
            .inc();
        self.durations[cache]
            .get_or_init(|| durations.with_label_values(&[label]))
            .observe(seconds);
    }

    /// One lookup in `lookups` (by result); `None` (no lookup) counts
    /// nothing.
    pub fn lookup(&self, lookups: &IntCounterVec, result: CacheStatus) {
        if let Some(counter) = self.lookups.get(result.index()) {
            counter
                .get_or_init(|| lookups.with_label_values(&[result.as_str()]))
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, Opts};

    fn families() -> (IntCounterVec, HistogramVec, IntCounterVec) {
        (
            IntCounterVec::new(Opts::new("r", "r"), &["status_class", "cache_status"]).unwrap(),
            HistogramVec::new(HistogramOpts::new("d", "d"), &["cache_status"]).unwrap(),
            IntCounterVec::new(Opts::new("l", "l"), &["result"]).unwrap(),
        )
    }

    /// Each call lands in the series `with_label_values` names, and makes
    /// no other series.
    #[test]
    fn counts_land_in_their_series() {
        let (requests, durations, lookups) = families();
        let per = PerRequest::default();
        let calls = [
            (200, CacheStatus::Hit),
            (200, CacheStatus::Hit),
            (206, CacheStatus::Miss),
            (404, CacheStatus::None),
            (0, CacheStatus::None),
            (499, CacheStatus::Bypass),
            (503, CacheStatus::Stale),
            (304, CacheStatus::Revalidated),
            (101, CacheStatus::Expired),
        ];
        for (status, cache) in calls {
            per.request(&requests, &durations, status, cache, 0.001);
            per.lookup(&lookups, cache);
        }
        let count = |class: &str, cache: &str| requests.with_label_values(&[class, cache]).get();
        assert_eq!(count("2xx", "hit"), 2);
        assert_eq!(count("2xx", "miss"), 1);
        assert_eq!(count("4xx", "none"), 1);
        assert_eq!(count("none", "none"), 1);
        assert_eq!(count("4xx", "bypass"), 1);
        assert_eq!(count("5xx", "stale"), 1);
        assert_eq!(count("3xx", "revalidated"), 1);
        assert_eq!(count("1xx", "expired"), 1);
        // Only the pairs counted exist (the reads above made no new ones).
        let series = |m: &dyn prometheus::core::Collector| {
            m.collect()
                .iter()
                .map(|f| f.get_metric().len())
                .sum::<usize>()
        };
        assert_eq!(series(&requests), 8);
        assert_eq!(series(&durations), 7);
        let hits = durations.with_label_values(&["hit"]).get_sample_count();
        assert_eq!(hits, 2);
        assert_eq!(lookups.with_label_values(&["hit"]).get(), 2);
        assert_eq!(lookups.with_label_values(&["stale"]).get(), 1);
        assert_eq!(series(&lookups), 6, "none is no lookup");
    }
}
