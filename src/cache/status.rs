//! The cache outcome of a request, as metrics, the access log and the
//! `X-Cache` header name it.

use pingora_cache::CachePhase;

/// How the cache took part in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
    Expired,
    Revalidated,
    Bypass,
    /// The request never reached the cache (refused, or no cache configured).
    None,
}

impl CacheStatus {
    /// Every status, in the order of their index ([`CacheStatus::index`]).
    pub const ALL: [CacheStatus; 7] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Stale,
        CacheStatus::Expired,
        CacheStatus::Revalidated,
        CacheStatus::Bypass,
        CacheStatus::None,
    ];

    /// Every lookup result counted in `cdn_node_cache_lookups_total`: all
    /// but `None`, in the same order.
    pub const LOOKUPS: [CacheStatus; 6] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Stale,
        CacheStatus::Expired,
        CacheStatus::Revalidated,
        CacheStatus::Bypass,
    ];

    /// The label (metrics `cache_status`, access log `cache`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Stale => "stale",
            CacheStatus::Expired => "expired",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::Bypass => "bypass",
            CacheStatus::None => "none",
        }
    }

    /// The `X-Cache` value: upper case, as CDNs print it.
    pub const fn header_value(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::None => "NONE",
        }
    }

    /// The status an `X-Cache` value names (another node's answer).
    pub fn of_header_value(value: &[u8]) -> Option<CacheStatus> {
        CacheStatus::ALL
            .into_iter()
            .find(|s| s.header_value().as_bytes() == value)
    }

    /// Its place in [`CacheStatus::ALL`] (and, but for `None`, in
    /// [`CacheStatus::LOOKUPS`]).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The status of a request that went through Pingora's cache phases.
    /// `missed` says the lookup missed: a miss whose fill was then refused
    /// (too large, no room) ends with the cache disabled, and is still a
    /// miss, served uncached.
    pub fn of_phase(phase: &CachePhase, missed: bool) -> CacheStatus {
        match phase {
            CachePhase::Disabled(_) if missed => CacheStatus::Miss,
            CachePhase::Hit => CacheStatus::Hit,
            CachePhase::Miss => CacheStatus::Miss,
            CachePhase::Stale | CachePhase::StaleUpdating => CacheStatus::Stale,
            CachePhase::Expired => CacheStatus::Expired,
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => CacheStatus::Revalidated,
            CachePhase::Bypass => CacheStatus::Bypass,
            CachePhase::Disabled(_) | CachePhase::Uninit | CachePhase::CacheKey => {
                CacheStatus::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::NoCacheReason;

    #[test]
    fn header_values_read_back() {
        for status in CacheStatus::ALL {
            assert_eq!(
                CacheStatus::of_header_value(status.header_value().as_bytes()),
                Some(status)
            );
        }
        assert_eq!(CacheStatus::of_header_value(b"hit"), None);
        assert_eq!(CacheStatus::of_header_value(b""), None);
    }

    #[test]
    fn phases() {
        let cases = [
            (CachePhase::Hit, CacheStatus::Hit),
            (CachePhase::Miss, CacheStatus::Miss),
            (CachePhase::Stale, CacheStatus::Stale),
            (CachePhase::StaleUpdating, CacheStatus::Stale),
            (CachePhase::Expired, CacheStatus::Expired),
            (CachePhase::Revalidated, CacheStatus::Revalidated),
            (
                CachePhase::RevalidatedNoCache(NoCacheReason::OriginNotCache),
                CacheStatus::Revalidated,
            ),
            (CachePhase::Bypass, CacheStatus::Bypass),
            (CachePhase::Uninit, CacheStatus::None),
            (
                CachePhase::Disabled(NoCacheReason::NeverEnabled),
                CacheStatus::None,
            ),
        ];
        for (phase, want) in cases {
            assert_eq!(CacheStatus::of_phase(&phase, false), want, "{phase:?}");
        }
        assert_eq!(
            CacheStatus::of_phase(&CachePhase::Disabled(NoCacheReason::StorageError), true),
            CacheStatus::Miss
        );
    }

    #[test]
    fn labels_and_indexes() {
        for (i, s) in CacheStatus::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(s.header_value(), s.as_str().to_ascii_uppercase());
        }
        for (i, s) in CacheStatus::LOOKUPS.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        assert_eq!(CacheStatus::Hit.as_str(), "hit");
        assert_eq!(CacheStatus::None.header_value(), "NONE");
    }
}
