//! Resolving range-specs against a representation's length (RFC 9110
//! §14.1.1-§14.1.2): what is satisfiable, and the parts actually sent.
//!
//! Parts are sorted and overlapping or adjacent ones are merged (RFC 9110
//! §14.2 allows coalescing), so a response never carries a byte twice and
//! is never larger than the object plus part headers; more than
//! [`MAX_PARTS`] parts after merging is served as the whole object.

use std::ops::Range;

use super::spec::Spec;

/// The most parts of a `multipart/byteranges` answer. Beyond it the whole
/// object is sent (200), which RFC 9110 §14.2 allows.
pub const MAX_PARTS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Serve the whole representation (200).
    Whole,
    /// Nothing satisfiable (416, `Content-Range: bytes */LEN`).
    Unsatisfiable,
    /// One range (206 with `Content-Range`); end exclusive.
    Single(Range<u64>),
    /// Two or more disjoint, non-adjacent ranges in ascending order
    /// (206 `multipart/byteranges`).
    Multi(Vec<Range<u64>>),
}

/// Resolves `specs` (as parsed) against a representation of `len` bytes.
///
/// A zero-length representation: an int-range (`N-M`, `N-`) can never be
/// satisfied (416), and `bytes=-0` never is; a suffix range with a
/// non-zero length is satisfiable by RFC 9110's definition, yet a 206
/// cannot express zero bytes, so such a request gets the empty object with
/// 200.
pub fn resolve(specs: &[Spec], len: u64) -> Plan {
    let mut ranges: Vec<Range<u64>> = Vec::with_capacity(specs.len());
    let mut empty_suffix = false;
    for spec in specs {
        match *spec {
            Spec::Closed { first, last } if first < len => {
                ranges.push(first..last.saturating_add(1).min(len));
            }
            Spec::Open { first } if first < len => ranges.push(first..len),
            Spec::Suffix { len: n } if n > 0 => {
                if len == 0 {
                    empty_suffix = true;
                } else {
                    ranges.push(len - n.min(len)..len);
                }
            }
            _ => {}
        }
    }
    if ranges.is_empty() {
        return if empty_suffix {
            Plan::Whole
        } else {
            Plan::Unsatisfiable
        };
    }
    let merged = coalesce(ranges);
    match merged.len() {
        1 => Plan::Single(merged[0].clone()),
        n if n > MAX_PARTS => Plan::Whole,
        _ => Plan::Multi(merged),
    }
}

/// Sorts and merges overlapping or adjacent ranges (all non-empty).
fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::spec::{Parsed, parse};

    fn plan(header: &str, len: u64) -> Plan {
        match parse(header.as_bytes()) {
            Parsed::Bytes(specs) => resolve(&specs, len),
            Parsed::Ignore => panic!("{header:?} did not parse"),
        }
    }

    #[test]
    fn table() {
        use Plan::*;
        let cases: &[(&str, u64, Plan)] = &[
            ("bytes=0-0", 10, Single(0..1)),
            ("bytes=0-9", 10, Single(0..10)),
            ("bytes=0-100", 10, Single(0..10)),
            ("bytes=9-", 10, Single(9..10)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-1", 10, Single(9..10)),
            ("bytes=-10", 10, Single(0..10)),
            ("bytes=-11", 10, Single(0..10)),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=-0", 0, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Whole),
            ("bytes=0-0,-5", 0, Whole),
            ("bytes=-0,20-", 10, Unsatisfiable),
            ("bytes=-0,2-3", 10, Single(2..4)),
            ("bytes=0-18446744073709551615", 10, Single(0..10)),
            ("bytes=18446744073709551615-", 10, Unsatisfiable),
            ("bytes=-18446744073709551615", 10, Single(0..10)),
            ("bytes=0-1,3-4", 10, Multi(vec![0..2, 3..5])),
            ("bytes=3-4,0-1", 10, Multi(vec![0..2, 3..5])),
            // Adjacent and overlapping parts merge.
            ("bytes=0-1,2-3", 10, Single(0..4)),
            ("bytes=0-5,2-3", 10, Single(0..6)),
            ("bytes=0-3,2-5,8-", 10, Multi(vec![0..6, 8..10])),
            ("bytes=-3,0-1", 10, Multi(vec![0..2, 7..10])),
            ("bytes=-3,5-", 10, Single(5..10)),
            ("bytes=0-0,0-0,0-0", 10, Single(0..1)),
            ("bytes=20-30,1-1", 10, Single(1..2)),
            ("bytes=0-,0-,0-", 10, Single(0..10)),
        ];
        for (header, len, want) in cases {
            assert_eq!(&plan(header, *len), want, "{header:?} on {len} bytes");
        }
    }

    #[test]
    fn too_many_parts_serve_the_whole_object() {
        let at: Vec<String> = (0..MAX_PARTS)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        let p = plan(&format!("bytes={}", at.join(",")), 1000);
        assert!(matches!(p, Plan::Multi(v) if v.len() == MAX_PARTS));
        let over: Vec<String> = (0..=MAX_PARTS)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        assert_eq!(
            plan(&format!("bytes={}", over.join(",")), 1000),
            Plan::Whole
        );
        // Many specs that merge into few parts are fine.
        let merging: Vec<String> = (0..90).map(|i| format!("{i}-{}", i + 5)).collect();
        assert_eq!(
            plan(&format!("bytes={}", merging.join(",")), 1000),
            Plan::Single(0..95)
        );
    }

    mod proptests {
        use super::*;
        use crate::range::spec::Spec;
        use proptest::prelude::*;

        /// Range-specs near the interesting edges of an object of up to 1000 bytes,
        /// and anywhere in `u64`.
        fn spec() -> impl Strategy<Value = Spec> {
            let pos = prop_oneof![0u64..1100, any::<u64>()];
            prop_oneof![
                (pos.clone(), pos.clone()).prop_map(|(a, b)| Spec::Closed {
                    first: a.min(b),
                    last: a.max(b),
                }),
                pos.clone().prop_map(|first| Spec::Open { first }),
                pos.prop_map(|len| Spec::Suffix { len }),
            ]
        }

        /// The bytes `spec` asks for in an object of `len` bytes (RFC 9110 §14.1.2).
        fn wanted(spec: &Spec, len: u64) -> Option<Range<u64>> {
            let r = match *spec {
                Spec::Closed { first, last } => first..last.saturating_add(1).min(len),
                Spec::Open { first } => first..len,
                Spec::Suffix { len: n } => len - n.min(len)..len,
            };
            (r.start < r.end).then_some(r)
        }

        proptest! {
            /// A plan never reads past the object, never holds an empty part, sends
            /// parts in order without overlap, and covers every byte asked for.
            #[test]
            fn plans_stay_inside_the_object(
                specs in proptest::collection::vec(spec(), 1..40),
                len in prop_oneof![0u64..1000, any::<u64>()],
            ) {
                let asked: Vec<Range<u64>> = specs.iter().filter_map(|s| wanted(s, len)).collect();
                let parts = match resolve(&specs, len) {
                    Plan::Whole => {
                        prop_assert!(asked.is_empty() || coalesce(asked).len() > MAX_PARTS);
                        return Ok(());
                    }
                    Plan::Unsatisfiable => {
                        prop_assert!(asked.is_empty());
                        return Ok(());
                    }
                    Plan::Single(r) => vec![r],
                    Plan::Multi(parts) => {
                        prop_assert!(parts.len() >= 2 && parts.len() <= MAX_PARTS);
                        parts
                    }
                };
                for r in &parts {
                    prop_assert!(r.start < r.end && r.end <= len, "{:?} of {}", r, len);
                }
                for pair in parts.windows(2) {
                    prop_assert!(pair[0].end < pair[1].start, "{:?}", parts);
                }
                for r in &asked {
                    prop_assert!(
                        parts.iter().any(|p| p.start <= r.start && r.end <= p.end),
                        "{:?} not sent in {:?}", r, parts
                    );
                }
                let sent: u64 = parts.iter().map(|p| p.end - p.start).sum();
                prop_assert!(sent <= len);
            }
        }
    }
}
