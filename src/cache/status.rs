//! The cache outcome of a request, as metrics, the access log and the
//! `X-Cache` header name it.

use pingora_cache::CachePhase;

pub const HIT: &str = "hit";
pub const MISS: &str = "miss";
pub const STALE: &str = "stale";
pub const EXPIRED: &str = "expired";
pub const REVALIDATED: &str = "revalidated";
pub const BYPASS: &str = "bypass";
/// The request never reached the cache (refused, or no cache configured).
pub const NONE: &str = "none";

/// Every lookup result counted in `cdn_node_cache_lookups_total`.
pub const LOOKUP_RESULTS: &[&str] = &[HIT, MISS, STALE, EXPIRED, REVALIDATED, BYPASS];

/// The label of a request's cache outcome. `missed` says the lookup missed:
/// a miss whose fill was then refused (too large, no room) ends with the
/// cache disabled, and is still a miss, served uncached.
pub fn label(phase: &CachePhase, missed: bool) -> &'static str {
    match phase {
        CachePhase::Disabled(_) if missed => MISS,
        CachePhase::Hit => HIT,
        CachePhase::Miss => MISS,
        CachePhase::Stale | CachePhase::StaleUpdating => STALE,
        CachePhase::Expired => EXPIRED,
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => REVALIDATED,
        CachePhase::Bypass => BYPASS,
        CachePhase::Disabled(_) | CachePhase::Uninit | CachePhase::CacheKey => NONE,
    }
}

/// The `X-Cache` value: upper case, as CDNs print it.
pub fn header_value(label: &str) -> &'static str {
    match label {
        HIT => "HIT",
        MISS => "MISS",
        STALE => "STALE",
        EXPIRED => "EXPIRED",
        REVALIDATED => "REVALIDATED",
        BYPASS => "BYPASS",
        _ => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::NoCacheReason;

    #[test]
    fn phases() {
        let cases = [
            (CachePhase::Hit, HIT),
            (CachePhase::Miss, MISS),
            (CachePhase::Stale, STALE),
            (CachePhase::StaleUpdating, STALE),
            (CachePhase::Expired, EXPIRED),
            (CachePhase::Revalidated, REVALIDATED),
            (
                CachePhase::RevalidatedNoCache(NoCacheReason::OriginNotCache),
                REVALIDATED,
            ),
            (CachePhase::Bypass, BYPASS),
            (CachePhase::Uninit, NONE),
            (CachePhase::Disabled(NoCacheReason::NeverEnabled), NONE),
        ];
        for (phase, want) in cases {
            assert_eq!(label(&phase, false), want, "{phase:?}");
        }
        assert_eq!(
            label(&CachePhase::Disabled(NoCacheReason::StorageError), true),
            MISS
        );
        assert_eq!(header_value(HIT), "HIT");
        assert_eq!(header_value(NONE), "NONE");
    }
}
