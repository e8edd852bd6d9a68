//! Stored metas decoded once per object version, not on every hit.
//!
//! `CacheMeta::deserialize` decodes the internal half (msgpack) and
//! decompresses (zstd) and parses the response header on every call, and
//! `CacheMeta` is not `Clone`. The first decode of a stored meta keeps what
//! the next ones need:
//!
//! - `Parts`: the arguments of `CacheMeta::new` and of its public setters
//!   (variance, epoch override). A hit builds its meta from them, with a copy
//!   of the header, and decodes nothing. Kept only when the meta built so
//!   serializes exactly as the decoded one, so no field is lost.
//! - `Header`: the meta carries a field no public API sets (`updated` after a
//!   revalidation, a provenance other than the creation time, an older
//!   internal version). A hit decodes the internal half from the stored bytes
//!   together with a fixed, minimal header, then puts a copy of the decoded
//!   one in its place.
//!
//! A rewritten meta (`update_meta`) is a new `StoredMeta` and is decoded
//! afresh. The meta files keep Pingora's bytes as they are.
//!
//! The minimal header is a zstd frame of one raw (stored) block, RFC 8878
//! section 3.1.1.2: decoding it is a copy.

use pingora_cache::CacheMeta;
use pingora_cache::key::HashBinary;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use std::sync::{LazyLock, OnceLock};
use std::time::SystemTime;

/// zstd frame magic number, little-endian.
const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Frame header descriptor: 4-byte content size, single segment, no
/// checksum, no dictionary.
const DESCRIPTOR: u8 = 0b1010_0000;

/// `data` (a few bytes: one block) as a zstd frame of one raw block.
fn raw_frame(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(&MAGIC);
    out.push(DESCRIPTOR);
    out.extend_from_slice(&len.to_le_bytes());
    // Block header, 3 bytes LE: last-block bit, type 0 (raw), size.
    let block = 1 | (len << 3);
    out.extend_from_slice(&block.to_le_bytes()[..3]);
    out.extend_from_slice(data);
    out
}

/// The serialized form of a header with no fields, as `CacheMeta` reads it.
static MINIMAL: LazyLock<Vec<u8>> = LazyLock::new(|| raw_frame(b"HTTP/1.1 200 OK\r\n\r\n"));

/// The arguments that build a meta equal to a stored one.
#[derive(Debug, Clone)]
struct Parts {
    fresh_until: SystemTime,
    created: SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    variance: Option<HashBinary>,
    epoch_override: Option<SystemTime>,
    header: ResponseHeader,
}

impl Parts {
    fn of(meta: &CacheMeta) -> Parts {
        Parts {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            stale_while_revalidate_sec: meta.stale_while_revalidate_sec(),
            stale_if_error_sec: meta.stale_if_error_sec(),
            variance: meta.variance(),
            epoch_override: meta.epoch_override(),
            header: meta.response_header().clone(),
        }
    }

    fn build(&self) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
            self.header.clone(),
        );
        if let Some(variance) = self.variance {
            meta.set_variance(variance);
        }
        if let Some(epoch) = self.epoch_override {
            meta.set_epoch_override(epoch);
        }
        meta
    }
}

/// How a hit gets its meta.
#[derive(Debug, Clone)]
enum Build {
    Parts(Parts),
    Header(ResponseHeader),
}

/// What the first decode of a stored meta keeps for the next ones.
#[derive(Debug, Clone)]
struct Known {
    build: Build,
    fresh_until: SystemTime,
    epoch: SystemTime,
    variance: Option<HashBinary>,
}

impl Known {
    fn learn(meta: &CacheMeta) -> Known {
        let parts = Parts::of(meta);
        // The internal halves as bytes: equal bytes decode to equal metas,
        // whatever fields a later Pingora adds.
        let internal = |m: &CacheMeta| m.serialize().ok().map(|(internal, _)| internal);
        let build = match (internal(&parts.build()), internal(meta)) {
            (Some(built), Some(stored)) if built == stored => Build::Parts(parts),
            _ => Build::Header(parts.header),
        };
        Known {
            build,
            fresh_until: meta.fresh_until(),
            epoch: meta.epoch(),
            variance: meta.variance(),
        }
    }

    fn meta(&self, internal: &[u8]) -> Result<CacheMeta> {
        match &self.build {
            Build::Parts(parts) => Ok(parts.build()),
            Build::Header(header) => {
                let mut meta = CacheMeta::deserialize(internal, &MINIMAL)?;
                *meta.response_header_mut() = header.clone();
                Ok(meta)
            }
        }
    }

    fn header(&self) -> &ResponseHeader {
        match &self.build {
            Build::Parts(parts) => &parts.header,
            Build::Header(header) => header,
        }
    }
}

/// What answering a hit needs of its meta, read without building one.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub header: &'a ResponseHeader,
    /// `CacheMeta::fresh_until`.
    pub fresh_until: SystemTime,
    /// `CacheMeta::epoch`: what the `Age` of a hit counts from.
    pub epoch: SystemTime,
    /// `CacheMeta::variance`.
    pub variance: Option<HashBinary>,
}

/// What the first decode of a serialized `CacheMeta` learnt.
#[derive(Debug, Default, Clone)]
pub struct Decoded(OnceLock<Known>);

impl Decoded {
    /// The `CacheMeta` of `internal` and `header`, which must be the same
    /// bytes on every call.
    pub fn decode(&self, internal: &[u8], header: &[u8]) -> Result<CacheMeta> {
        if let Some(known) = self.0.get() {
            return known.meta(internal);
        }
        let meta = CacheMeta::deserialize(internal, header)?;
        let _ = self.0.set(Known::learn(&meta));
        Ok(meta)
    }

    /// The stored meta's header and times, once a decode has learnt them
    /// (`None` before the first decode).
    pub fn view(&self) -> Option<View<'_>> {
        let known = self.0.get()?;
        Some(View {
            header: known.header(),
            fresh_until: known.fresh_until,
            epoch: known.epoch,
            variance: known.variance,
        })
    }

    /// Whether hits build the meta from its parts, decoding nothing.
    #[cfg(test)]
    fn builds_from_parts(&self) -> bool {
        matches!(
            self.0.get(),
            Some(Known {
                build: Build::Parts(_),
                ..
            })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn header(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            h.append_header(name.to_string(), *value).unwrap();
        }
        h
    }

    /// Every later decode gives a meta that serializes as `CacheMeta::deserialize`
    /// of the same bytes does; `parts` says whether it is built without decoding.
    #[test]
    fn every_decode_gives_the_stored_meta() {
        let now = SystemTime::now();
        let created = now - Duration::from_secs(600);
        let fresh = now + Duration::from_secs(60);
        let s3 = [
            ("content-length", "1024"),
            ("ETag", "\"abc\""),
            ("x-amz-meta-a", "one"),
            ("x-amz-meta-a", "two"),
        ];
        type Change = fn(&mut CacheMeta, SystemTime);
        let cases: Vec<(&str, ResponseHeader, u32, u32, Change, bool)> = vec![
            ("plain", header(200, &[]), 0, 0, |_, _| {}, true),
            ("s3 fields", header(200, &s3), 0, 0, |_, _| {}, true),
            (
                "error answer",
                header(404, &[("content-type", "application/xml")]),
                0,
                0,
                |_, _| {},
                true,
            ),
            ("stale windows", header(200, &s3), 30, 3600, |_, _| {}, true),
            (
                "variance",
                header(200, &s3),
                0,
                0,
                |m, _| m.set_variance_key([9; 16]),
                true,
            ),
            (
                "epoch override",
                header(200, &s3),
                5,
                7,
                |m, now| m.set_epoch_override(now - Duration::from_secs(3)),
                true,
            ),
            (
                "variance and epoch override",
                header(200, &[]),
                5,
                0,
                |m, now| {
                    m.set_variance([1; 16]);
                    m.set_epoch_override(now);
                },
                true,
            ),
            (
                "expired",
                header(200, &s3),
                10,
                10,
                |m, now| m.expire_at(now - Duration::from_secs(700)),
                true,
            ),
            (
                "revalidated",
                header(200, &s3),
                30,
                60,
                |m, now| m.update_freshness(now + Duration::from_secs(120), 15, 45),
                false,
            ),
            (
                "revalidated with variance",
                header(200, &s3),
                0,
                0,
                |m, now| {
                    m.set_variance_key([4; 16]);
                    m.update_freshness(now + Duration::from_secs(120), 0, 0);
                },
                false,
            ),
        ];
        for (name, h, swr, sie, change, parts) in cases {
            let mut meta = CacheMeta::new(fresh, created, swr, sie, h);
            change(&mut meta, now);
            let (internal, header) = meta.serialize().unwrap();
            let want = CacheMeta::deserialize(&internal, &header)
                .unwrap()
                .serialize()
                .unwrap();
            let decoded = Decoded::default();
            assert!(decoded.view().is_none(), "{name}: nothing learnt yet");
            for round in 0..3 {
                let got = decoded.decode(&internal, &header).unwrap();
                assert_eq!(got.serialize().unwrap(), want, "{name}, decode {round}");
                assert_eq!(got.headers(), meta.headers(), "{name}, decode {round}");
                assert_eq!(got.updated(), meta.updated(), "{name}, decode {round}");
                assert_eq!(got.provenance(), meta.provenance(), "{name}");
            }
            assert_eq!(decoded.builds_from_parts(), parts, "{name}");
            let view = decoded.view().unwrap();
            assert_eq!(view.header.headers, meta.headers().clone(), "{name}");
            assert_eq!(view.header.status, meta.response_header().status);
            assert_eq!(view.fresh_until, meta.fresh_until(), "{name}");
            assert_eq!(view.epoch, meta.epoch(), "{name}");
            assert_eq!(view.variance, meta.variance(), "{name}");
        }
    }

    /// An internal half without the provenance field (as older writers left
    /// it) is not one `CacheMeta::new` makes: hits decode it.
    #[test]
    fn a_meta_without_provenance_is_decoded_on_every_hit() {
        // 1,700,000,000 s (0x6553f100) and 0 ns after the epoch.
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let meta = CacheMeta::new(created, created, 0, 0, header(200, &[]));
        let (mut internal, header) = meta.serialize().unwrap();
        // msgpack: a fixarray of 9 (version 2 with provenance) whose last
        // item is the provenance, `[u32 secs, fixint nanos]`; drop it.
        let provenance = [0x92, 0xce, 0x65, 0x53, 0xf1, 0x00, 0x00];
        assert_eq!(internal[0], 0x99);
        assert!(internal.ends_with(&provenance), "{internal:x?}");
        internal.truncate(internal.len() - provenance.len());
        internal[0] = 0x98;
        let want = CacheMeta::deserialize(&internal, &header)
            .unwrap()
            .serialize()
            .unwrap();
        assert_eq!(
            want.0, internal,
            "decodes and serializes without provenance"
        );
        let decoded = Decoded::default();
        for _ in 0..2 {
            let got = decoded.decode(&internal, &header).unwrap();
            assert_eq!(got.serialize().unwrap(), want);
        }
        assert!(!decoded.builds_from_parts());
    }

    #[test]
    fn the_minimal_header_is_one_raw_block() {
        let want: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, // magic
            0xa0, // descriptor
            19, 0, 0, 0, // content size
            0x99, 0, 0, // last, raw, 19 bytes
        ];
        assert_eq!(&MINIMAL[..12], want);
        assert_eq!(&MINIMAL[12..], b"HTTP/1.1 200 OK\r\n\r\n");
        let meta = CacheMeta::new(SystemTime::now(), SystemTime::now(), 0, 0, {
            ResponseHeader::build(200, None).unwrap()
        });
        let (internal, _) = meta.serialize().unwrap();
        assert!(CacheMeta::deserialize(&internal, &MINIMAL).is_ok());
    }

    #[test]
    fn garbage_is_an_error() {
        let decoded = Decoded::default();
        assert!(decoded.decode(b"not a meta", b"not a header").is_err());
        assert!(decoded.0.get().is_none(), "nothing learnt");
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
            proptest::collection::vec(("x-[a-z]{1,8}", "[!-~]{0,12}"), 0..4)
        }

        proptest! {
            /// Any stored bytes: decoded or refused, never a panic; what decodes
            /// decodes the same the second time, from what the first learnt.
            #[test]
            fn any_bytes_decode_or_are_refused(
                internal in proptest::collection::vec(any::<u8>(), 0..64),
                header in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let decoded = Decoded::default();
                if let Ok(first) = decoded.decode(&internal, &header) {
                    let second = decoded.decode(&internal, &header).expect("decodes again");
                    prop_assert_eq!(first.serialize().ok(), second.serialize().ok());
                }
            }

            /// A meta built from any times, windows, status and fields serializes,
            /// decodes, and decodes again to the same bytes.
            #[test]
            fn metas_round_trip(
                fresh in 0u64..4_000_000_000,
                age in 0u64..1_000_000,
                swr in any::<u32>(),
                sie in any::<u32>(),
                status in 200u16..600,
                fields in fields(),
                variance in any::<Option<[u8; 16]>>(),
            ) {
                let fresh_until = SystemTime::UNIX_EPOCH + Duration::from_secs(fresh);
                let created = fresh_until - Duration::from_secs(age.min(fresh));
                let mut h = ResponseHeader::build(status, None).unwrap();
                for (name, value) in &fields {
                    h.append_header(name.clone(), value.as_str()).unwrap();
                }
                let mut meta = CacheMeta::new(fresh_until, created, swr, sie, h);
                if let Some(v) = variance {
                    meta.set_variance(v);
                }
                let (internal, header) = meta.serialize().unwrap();
                let want = CacheMeta::deserialize(&internal, &header)
                    .unwrap()
                    .serialize()
                    .unwrap();
                let decoded = Decoded::default();
                for _ in 0..2 {
                    let got = decoded.decode(&internal, &header).expect("decodes");
                    prop_assert_eq!(&got.serialize().unwrap(), &want);
                    prop_assert_eq!(got.headers(), meta.headers());
                }
                prop_assert!(decoded.builds_from_parts());
            }
        }
    }
}
