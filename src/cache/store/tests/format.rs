//! The on-disk format, pinned by bytes an earlier build wrote.

use crate::cache::store::format::*;
use std::time::{Duration, UNIX_EPOCH};

/// A version 1 meta file, field by field (all integers little-endian).
/// Changing the encoding breaks this test: bump `VERSION` instead.
const V1_META: &[u8] = &[
    // magic "cdnstore"
    0x63, 0x64, 0x6e, 0x73, 0x74, 0x6f, 0x72, 0x65, //
    // version 1, kind 1 (meta), fields length 67
    0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x43, 0x00, 0x00, 0x00, //
    // entry id 0x0102030405060708
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, //
    // body length 5
    0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    // fresh_until: 1_700_000_000 s after the epoch, in nanoseconds
    0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, //
    // primary hash: 16 x 0xaa
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, //
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, //
    // no variance
    0x00, //
    // user tag: length 0
    0x00, 0x00, //
    // primary key: length 6, "/a.mp4"
    0x06, 0x00, 0x00, 0x00, 0x2f, 0x61, 0x2e, 0x6d, 0x70, 0x34, //
    // CacheMeta internal: length 3, "int"
    0x03, 0x00, 0x00, 0x00, 0x69, 0x6e, 0x74, //
    // CacheMeta header: length 3, "hdr"
    0x03, 0x00, 0x00, 0x00, 0x68, 0x64, 0x72, //
    // FNV-1a 64 of everything above
    0x55, 0x23, 0xc3, 0x53, 0x77, 0xb0, 0x58, 0x5f,
];

/// A version 1 body file preamble for that entry, key hash 0xaa..., then "hello".
const V1_BODY: &[u8] = &[
    0x63, 0x64, 0x6e, 0x73, 0x74, 0x6f, 0x72, 0x65, // magic
    0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // version 1, kind 2 (body)
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // entry id
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // first 8 bytes of the key hash
    b'h', b'e', b'l', b'l', b'o',
];

fn v1_header() -> ObjectHeader {
    ObjectHeader {
        entry_id: 0x0102_0304_0506_0708,
        body_len: 5,
        fresh_until: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        primary_bin: [0xaa; 16],
        variance: None,
        user_tag: String::new(),
        primary: b"/a.mp4".to_vec(),
        meta_internal: b"int".to_vec(),
        meta_header: b"hdr".to_vec(),
    }
}

#[test]
fn decodes_fixed_v1_meta() {
    assert_eq!(decode_meta(V1_META).unwrap(), v1_header());
}

#[test]
fn encodes_exactly_the_fixed_v1_meta() {
    assert_eq!(encode_meta(&v1_header()).unwrap(), V1_META);
}

#[test]
fn fixed_v1_body_preamble_matches() {
    let preamble = &V1_BODY[..BODY_PREAMBLE_LEN as usize];
    assert_eq!(
        preamble,
        encode_body_preamble(0x0102_0304_0506_0708, &[0xaa; 16])
    );
    check_body_preamble(preamble, 0x0102_0304_0506_0708, &[0xaa; 16]).unwrap();
    assert_eq!(&V1_BODY[BODY_PREAMBLE_LEN as usize..], b"hello");
    assert!(check_body_preamble(preamble, 7, &[0xaa; 16]).is_err());
}

#[test]
fn round_trips_variance_and_tags() {
    let mut h = v1_header();
    h.variance = Some([3; 16]);
    h.user_tag = "tenant".into();
    h.meta_header = vec![9; 5000];
    assert_eq!(decode_meta(&encode_meta(&h).unwrap()).unwrap(), h);
}

#[test]
fn other_version_is_reported_not_decoded() {
    let mut bytes = V1_META.to_vec();
    bytes[8] = 2;
    assert_eq!(decode_meta(&bytes), Err(DecodeError::OtherVersion(2)));
    bytes[8] = 0;
    assert_eq!(decode_meta(&bytes), Err(DecodeError::OtherVersion(0)));
}

#[test]
fn corrupt_or_truncated_meta_is_rejected() {
    assert_eq!(decode_meta(b"nonsense"), Err(DecodeError::Length));
    assert_eq!(decode_meta(b"NOTASTOREFILE..."), Err(DecodeError::BadMagic));
    for cut in 0..V1_META.len() {
        assert!(
            decode_meta(&V1_META[..cut]).is_err(),
            "prefix of {cut} bytes"
        );
    }
    for i in 20..V1_META.len() {
        let mut bytes = V1_META.to_vec();
        bytes[i] ^= 0x40;
        assert!(decode_meta(&bytes).is_err(), "flipped byte {i}");
    }
    let mut body_kind = V1_META.to_vec();
    body_kind[12] = 2;
    assert_eq!(decode_meta(&body_kind), Err(DecodeError::WrongKind(2)));
}

#[test]
fn oversized_fields_refuse_to_encode() {
    let mut h = v1_header();
    h.meta_header = vec![0; MAX_META_LEN];
    assert!(encode_meta(&h).is_err());
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = ObjectHeader> {
        (
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<[u8; 16]>(), any::<Option<[u8; 16]>>(), ".{0,8}"),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(
                    (entry_id, body_len, nanos),
                    (primary_bin, variance, user_tag),
                    primary,
                    internal,
                    header,
                )| {
                    ObjectHeader {
                        entry_id,
                        body_len,
                        fresh_until: UNIX_EPOCH + Duration::from_nanos(nanos),
                        primary_bin,
                        variance,
                        user_tag,
                        primary,
                        meta_internal: internal,
                        meta_header: header,
                    }
                },
            )
    }

    proptest! {
        /// Every header encodes, decodes to itself, and declares its own length.
        #[test]
        fn meta_round_trips(h in header()) {
            let bytes = encode_meta(&h).expect("small fields encode");
            prop_assert_eq!(meta_declared_len(&bytes), Some(bytes.len()));
            prop_assert_eq!(decode_meta(&bytes), Ok(h));
        }

        /// Any one byte changed is noticed (checksum, length or field), never
        /// decoded as another header.
        #[test]
        fn a_changed_byte_is_refused(h in header(), at in any::<prop::sample::Index>(), xor in 1u8..) {
            let mut bytes = encode_meta(&h).expect("small fields encode");
            let at = at.index(bytes.len());
            bytes[at] ^= xor;
            prop_assert!(decode_meta(&bytes).is_err(), "byte {} changed", at);
        }

        /// Arbitrary bytes, and an encoded meta cut anywhere: refused, never a panic.
        #[test]
        fn garbage_and_truncations_are_refused(
            garbage in proptest::collection::vec(any::<u8>(), 0..128),
            h in header(),
            cut in any::<prop::sample::Index>(),
        ) {
            if let Ok(decoded) = decode_meta(&garbage) {
                prop_assert_eq!(encode_meta(&decoded).ok(), Some(garbage));
            }
            let bytes = encode_meta(&h).expect("small fields encode");
            let cut = cut.index(bytes.len());
            prop_assert!(decode_meta(&bytes[..cut]).is_err());
            prop_assert!(check_body_preamble(&bytes[..cut], h.entry_id, &h.primary_bin).is_err());
        }
    }
}
