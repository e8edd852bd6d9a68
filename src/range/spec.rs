//! The `Range` header's syntax (RFC 9110 §14.1): the `bytes` unit and its
//! range-specs. Parsing knows nothing about the representation; resolving
//! the specs against a length is `plan`'s work.

/// The most range-specs read from one header. A header listing more is
/// served as the whole representation (RFC 9110 §14.2 lets a server ignore
/// `Range`), so a crafted header costs no more than this much work.
pub const MAX_SPECS: usize = 100;

/// One `range-spec`, positions as written (inclusive `last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `first-last`
    Closed { first: u64, last: u64 },
    /// `first-`
    Open { first: u64 },
    /// `-len`: the last `len` bytes.
    Suffix { len: u64 },
}

/// What a `Range` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Byte ranges, in the order written.
    Bytes(Vec<Spec>),
    /// Not something this node acts on: another unit, invalid syntax (a
    /// `last` before its `first` included), or too many specs. The header is
    /// ignored and the whole representation is served.
    Ignore,
}

/// Parses a `Range` field value.
///
/// Accepted: the unit `bytes` in any case, optional whitespace around `=`,
/// list elements separated by commas with optional whitespace, empty list
/// elements (RFC 9110 §5.6.1 asks recipients to accept them). Numbers are
/// ASCII digits only; values beyond `u64` saturate (they are beyond any
/// representation anyway).
pub fn parse(value: &[u8]) -> Parsed {
    let Ok(text) = std::str::from_utf8(value) else {
        return Parsed::Ignore;
    };
    let Some((unit, set)) = text.split_once('=') else {
        return Parsed::Ignore;
    };
    if !unit.trim_matches(is_ows).eq_ignore_ascii_case("bytes") {
        return Parsed::Ignore;
    }
    let mut specs = Vec::new();
    for element in set.split(',') {
        let element = element.trim_matches(is_ows);
        if element.is_empty() {
            continue;
        }
        if specs.len() == MAX_SPECS {
            return Parsed::Ignore;
        }
        match parse_spec(element) {
            Some(spec) => specs.push(spec),
            None => return Parsed::Ignore,
        }
    }
    if specs.is_empty() {
        return Parsed::Ignore;
    }
    Parsed::Bytes(specs)
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn parse_spec(element: &str) -> Option<Spec> {
    let (first, last) = element.split_once('-')?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix { len: number(last)? }),
        (false, true) => Some(Spec::Open {
            first: number(first)?,
        }),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            // RFC 9110 §14.1.1: a last-pos below its first-pos makes the
            // whole ranges-specifier invalid.
            (last >= first).then_some(Spec::Closed { first, last })
        }
    }
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::Spec::{Closed, Open, Suffix};
    use super::*;

    fn ok(specs: &[Spec]) -> Parsed {
        Parsed::Bytes(specs.to_vec())
    }

    #[test]
    fn table() {
        let cases: &[(&str, Parsed)] = &[
            ("bytes=0-0", ok(&[Closed { first: 0, last: 0 }])),
            (
                "bytes=0-499",
                ok(&[Closed {
                    first: 0,
                    last: 499,
                }]),
            ),
            ("bytes=500-", ok(&[Open { first: 500 }])),
            ("bytes=-500", ok(&[Suffix { len: 500 }])),
            ("bytes=-0", ok(&[Suffix { len: 0 }])),
            ("BYTES=1-2", ok(&[Closed { first: 1, last: 2 }])),
            ("Bytes=1-2", ok(&[Closed { first: 1, last: 2 }])),
            (
                "bytes=0-1,4-5,-3",
                ok(&[
                    Closed { first: 0, last: 1 },
                    Closed { first: 4, last: 5 },
                    Suffix { len: 3 },
                ]),
            ),
            (
                "bytes= 0-1 ,\t4- , -3 ",
                ok(&[
                    Closed { first: 0, last: 1 },
                    Open { first: 4 },
                    Suffix { len: 3 },
                ]),
            ),
            ("bytes = 7-9", ok(&[Closed { first: 7, last: 9 }])),
            ("bytes=,0-1,,", ok(&[Closed { first: 0, last: 1 }])),
            (
                "bytes=0-99999999999999999999999",
                ok(&[Closed {
                    first: 0,
                    last: u64::MAX,
                }]),
            ),
            ("bytes=007-010", ok(&[Closed { first: 7, last: 10 }])),
            // Invalid or unknown: ignored, the whole object is served.
            ("bytes=1-0", Parsed::Ignore),
            ("bytes=0-1,5-4", Parsed::Ignore),
            ("bytes=", Parsed::Ignore),
            ("bytes=,", Parsed::Ignore),
            ("bytes=-", Parsed::Ignore),
            ("bytes=a-b", Parsed::Ignore),
            ("bytes=1-2-3", Parsed::Ignore),
            ("bytes=+1-2", Parsed::Ignore),
            ("bytes=-+2", Parsed::Ignore),
            ("bytes=1 -2", Parsed::Ignore),
            ("bytes=0x10-20", Parsed::Ignore),
            ("bytes 0-1", Parsed::Ignore),
            ("bytes:0-1", Parsed::Ignore),
            ("items=0-1", Parsed::Ignore),
            ("bytesx=0-1", Parsed::Ignore),
            ("=0-1", Parsed::Ignore),
            ("", Parsed::Ignore),
            ("bytes=1", Parsed::Ignore),
            ("bytes=0-1;q=1", Parsed::Ignore),
        ];
        for (input, want) in cases {
            assert_eq!(&parse(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn non_utf8_is_ignored() {
        assert_eq!(parse(b"bytes=0-1\xff"), Parsed::Ignore);
    }

    #[test]
    fn too_many_specs_are_ignored() {
        let at_limit: Vec<String> = (0..MAX_SPECS).map(|i| format!("{i}-{i}")).collect();
        let header = format!("bytes={}", at_limit.join(","));
        assert!(matches!(parse(header.as_bytes()), Parsed::Bytes(v) if v.len() == MAX_SPECS));
        let over = format!("{header},500-501");
        assert_eq!(parse(over.as_bytes()), Parsed::Ignore);
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// The text of one range-spec.
        fn written(spec: &Spec) -> String {
            match *spec {
                Closed { first, last } => format!("{first}-{last}"),
                Open { first } => format!("{first}-"),
                Suffix { len } => format!("-{len}"),
            }
        }

        fn spec() -> impl Strategy<Value = Spec> {
            prop_oneof![
                (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Closed {
                    first: a.min(b),
                    last: a.max(b),
                }),
                any::<u64>().prop_map(|first| Open { first }),
                any::<u64>().prop_map(|len| Suffix { len }),
            ]
        }

        proptest! {
            /// Any bytes: an answer, never a panic, and never more specs than the bound.
            #[test]
            fn any_bytes_parse_or_are_ignored(value in proptest::collection::vec(any::<u8>(), 0..64)) {
                if let Parsed::Bytes(specs) = parse(&value) {
                    prop_assert!(!specs.is_empty() && specs.len() <= MAX_SPECS);
                }
            }

            /// Specs written out, with any spacing and empty elements, parse back to
            /// themselves in order.
            #[test]
            fn written_specs_parse_back(
                specs in proptest::collection::vec(spec(), 1..=MAX_SPECS),
                spacing in proptest::sample::select(vec![",", ", ", " ,\t", ",,"]),
                unit in proptest::sample::select(vec!["bytes=", "BYTES =", "Bytes= "]),
            ) {
                let set: Vec<String> = specs.iter().map(written).collect();
                let header = format!("{unit}{}", set.join(spacing));
                prop_assert_eq!(parse(header.as_bytes()), Parsed::Bytes(specs));
            }
        }
    }
}
