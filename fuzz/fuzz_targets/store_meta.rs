//! The store's meta file (`src/cache/store/FORMAT.md`) and the Pingora meta
//! inside it.
//!
//! The input is read three ways: as a whole meta file; as the fields of one,
//! given a valid prefix and checksum so the field parsing is reached; and as
//! the two halves of a serialized `CacheMeta` (the first two bytes say where
//! the second starts). Checks: nothing panics; whatever decodes encodes back
//! to the same bytes; a `CacheMeta` decodes the same the second time (from
//! what the first decode learnt) as the first.

#![no_main]

use cdn_node::fuzzing::store::{
    KIND_META, MAGIC, VERSION, checksum, decode_meta, decode_twice, encode_meta, meta_declared_len,
};
use libfuzzer_sys::fuzz_target;

/// `fields` with the prefix and checksum of a meta file around them.
fn sealed(fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() + 28);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&KIND_META.to_le_bytes());
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    out.extend_from_slice(fields);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn round_trip(file: &[u8]) {
    let Ok(header) = decode_meta(file) else {
        return;
    };
    assert_eq!(meta_declared_len(file), Some(file.len()));
    let again = encode_meta(&header).expect("a decoded header encodes");
    assert_eq!(again, file, "encode(decode(file)) differs");
    if let Some((first, second)) = decode_twice(&header.meta_internal, &header.meta_header) {
        assert_eq!(first, second, "the second decode differs");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    round_trip(&sealed(data));
    if let [a, b, rest @ ..] = data {
        let at = usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1);
        let (internal, header) = rest.split_at(at);
        if let Some((first, second)) = decode_twice(internal, header) {
            assert_eq!(first, second, "the second decode differs");
        }
    }
});
