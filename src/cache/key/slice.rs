//! Cache keys of a sliced object. Every key starts with the object's own
//! primary key followed by a space (which no request target contains), so a
//! purge of the object, or of a prefix, removes its slices and its record.
//!
//! Slices of different versions never share a key: the key carries a tag
//! of the ETag the slice was fetched under.

use pingora_cache::CacheKey;

use super::hashed as hashed_key;

/// The prefix of every key derived from `primary`.
pub fn family(primary: &str) -> String {
    format!("{primary} #")
}

/// Ends the key of every record.
const INFO_SUFFIX: &str = " #info";

/// The object's record: size, version and headers, from an origin HEAD.
pub fn info(primary: &str) -> CacheKey {
    hashed_key(format!("{primary}{INFO_SUFFIX}"))
}

/// Whether a stored primary key is a record's, not a body's.
pub fn is_record(primary: &[u8]) -> bool {
    primary.ends_with(INFO_SUFFIX.as_bytes())
}

/// Whether a stored primary key is a slice's.
pub fn is_slice(primary: &[u8]) -> bool {
    // Derived keys are "{primary} #...": the first space starts the suffix
    // (a request's own key has none).
    let Some(space) = primary.iter().position(|b| *b == b' ') else {
        return false;
    };
    primary[space..].starts_with(b" #v=")
}

/// A short, stable tag of an ETag (FNV-1a 64, hex).
pub fn version_tag(etag: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in etag.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The prefix of every slice of one version.
pub fn version_prefix(primary: &str, tag: &str) -> String {
    format!("{primary} #v={tag}#")
}

/// The prefix of the slice keys of one version, for `slice_at`.
pub fn slice_prefix(primary: &str, tag: &str) -> String {
    format!("{primary} #v={tag}#s=")
}

/// Slice `n` under a `slice_prefix`.
pub fn slice_at(prefix: &str, n: u64) -> CacheKey {
    hashed_key(format!("{prefix}{n}"))
}

/// Slice `n` of one version.
pub fn slice(primary: &str, tag: &str, n: u64) -> CacheKey {
    slice_at(&slice_prefix(primary, tag), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_object_shares_its_family_prefix() {
        let p = "/v/a.mp4";
        let tag = version_tag("\"abc\"");
        for k in [info(p), slice(p, &tag, 0), slice(p, &tag, 12)] {
            assert!(k.primary_key_str().unwrap().starts_with(&family(p)));
            assert!(k.primary_key_str().unwrap().starts_with(p));
        }
        assert!(
            slice(p, &tag, 3)
                .primary_key_str()
                .unwrap()
                .starts_with(&version_prefix(p, &tag))
        );
        assert_ne!(version_tag("\"abc\""), version_tag("\"abd\""));
        assert_eq!(
            slice_at(&slice_prefix(p, &tag), 7).primary_key_str(),
            Some(format!("{p} #v={tag}#s=7").as_str())
        );
        // Another object whose path extends this one is not in the family.
        assert!(!"/v/a.mp4x #info".starts_with(&family(p)));
    }

    #[test]
    fn records_are_told_from_bodies() {
        let p = "/v/a.mp4";
        let text = |k: CacheKey| k.primary_key_str().unwrap().as_bytes().to_vec();
        assert!(is_record(&text(info(p))));
        assert!(!is_record(&text(slice(p, &version_tag("\"x\""), 0))));
        assert!(!is_record(p.as_bytes()));
        assert!(!is_record(b"/v/info"));
    }

    #[test]
    fn slices_are_told_from_other_keys() {
        let p = "/v/a.mp4";
        let text = |k: CacheKey| k.primary_key_str().unwrap().as_bytes().to_vec();
        assert!(is_slice(&text(slice(p, &version_tag("\"x\""), 0))));
        assert!(!is_slice(&text(info(p))));
        assert!(!is_slice(p.as_bytes()));
        assert!(!is_slice(b"/v/a.mp4?v=1"));
    }
}
