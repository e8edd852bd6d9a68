//! The on-disk encoding of an object: the meta file (header) and the
//! preamble of the body file. See `FORMAT.md` next to this file.
//!
//! Everything here is pure byte work: no I/O, no panics on bad input.

use pingora_cache::key::HashBinary;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First bytes of every file the store writes.
pub const MAGIC: [u8; 8] = *b"cdnstore";
/// The format this build reads and writes.
pub const VERSION: u32 = 1;
/// `kind` field of a meta file.
pub const KIND_META: u32 = 1;
/// `kind` field of a body file.
pub const KIND_BODY: u32 = 2;
/// Length of the body file preamble; the body starts at this offset.
pub const BODY_PREAMBLE_LEN: u64 = 32;
/// Largest meta file accepted (write and read): bounds every header read.
pub const MAX_META_LEN: usize = 2 * 1024 * 1024;

/// Magic, version, kind, fields length.
const META_PREFIX_LEN: usize = 8 + 4 + 4 + 4;
const CHECKSUM_LEN: usize = 8;

/// What the meta file of an object records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHeader {
    pub entry_id: u64,
    pub body_len: u64,
    /// Freshness copied from the `CacheMeta`, so a scan needs no meta decoding.
    pub fresh_until: SystemTime,
    pub primary_bin: HashBinary,
    pub variance: Option<HashBinary>,
    pub user_tag: String,
    /// `CacheKey::primary_key()` bytes (the canonical path and query).
    pub primary: Vec<u8>,
    /// `CacheMeta::serialize().0` (opaque to the store).
    pub meta_internal: Vec<u8>,
    /// `CacheMeta::serialize().1` (opaque to the store).
    pub meta_header: Vec<u8>,
}

/// Why bytes were not accepted as an object file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a store file (bad magic)")]
    BadMagic,
    #[error("format version {0}, this build reads {VERSION}")]
    OtherVersion(u32),
    #[error("wrong file kind {0}")]
    WrongKind(u32),
    #[error("truncated or oversized file")]
    Length,
    #[error("header checksum mismatch")]
    Checksum,
    #[error("malformed field: {0}")]
    Field(&'static str),
}

/// FNV-1a, 64 bit: detects torn or corrupted headers (not an adversary).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn time_to_nanos(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

fn nanos_to_time(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

/// Encodes a meta file. Fails only when a field exceeds its length field.
pub fn encode_meta(h: &ObjectHeader) -> Result<Vec<u8>, DecodeError> {
    let user_tag_len =
        u16::try_from(h.user_tag.len()).map_err(|_| DecodeError::Field("user_tag"))?;
    let primary_len = u32::try_from(h.primary.len()).map_err(|_| DecodeError::Field("primary"))?;
    let internal_len =
        u32::try_from(h.meta_internal.len()).map_err(|_| DecodeError::Field("meta_internal"))?;
    let header_len =
        u32::try_from(h.meta_header.len()).map_err(|_| DecodeError::Field("meta_header"))?;

    let mut fields = Vec::with_capacity(
        64 + h.user_tag.len() + h.primary.len() + h.meta_internal.len() + h.meta_header.len(),
    );
    fields.extend_from_slice(&h.entry_id.to_le_bytes());
    fields.extend_from_slice(&h.body_len.to_le_bytes());
    fields.extend_from_slice(&time_to_nanos(h.fresh_until).to_le_bytes());
    fields.extend_from_slice(&h.primary_bin);
    match &h.variance {
        Some(v) => {
            fields.push(1);
            fields.extend_from_slice(v);
        }
        None => fields.push(0),
    }
    fields.extend_from_slice(&user_tag_len.to_le_bytes());
    fields.extend_from_slice(h.user_tag.as_bytes());
    fields.extend_from_slice(&primary_len.to_le_bytes());
    fields.extend_from_slice(&h.primary);
    fields.extend_from_slice(&internal_len.to_le_bytes());
    fields.extend_from_slice(&h.meta_internal);
    fields.extend_from_slice(&header_len.to_le_bytes());
    fields.extend_from_slice(&h.meta_header);

    let fields_len = u32::try_from(fields.len()).map_err(|_| DecodeError::Length)?;
    let mut out = Vec::with_capacity(META_PREFIX_LEN + fields.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&KIND_META.to_le_bytes());
    out.extend_from_slice(&fields_len.to_le_bytes());
    out.extend_from_slice(&fields);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    if out.len() > MAX_META_LEN {
        return Err(DecodeError::Length);
    }
    Ok(out)
}

/// A cursor over a byte slice that never reads past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Field(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn bytes_u32(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
}

/// Checks magic, version and kind of the first 16 bytes of a file.
fn check_prefix(buf: &[u8], kind: u32) -> Result<(), DecodeError> {
    if buf.len() < 16 {
        return Err(DecodeError::Length);
    }
    if buf[..8] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let mut r = Reader { buf: &buf[8..16] };
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(DecodeError::OtherVersion(version));
    }
    let k = r.u32("kind")?;
    if k != kind {
        return Err(DecodeError::WrongKind(k));
    }
    Ok(())
}

/// The total length a meta file declares in its first 20 bytes (`None`
/// while fewer are given), so a reader can stop without a read at EOF.
pub fn meta_declared_len(prefix: &[u8]) -> Option<usize> {
    let n = prefix.get(16..20)?;
    let fields = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
    Some(META_PREFIX_LEN + fields + CHECKSUM_LEN)
}

/// Decodes a whole meta file.
pub fn decode_meta(buf: &[u8]) -> Result<ObjectHeader, DecodeError> {
    check_prefix(buf, KIND_META)?;
    if buf.len() < META_PREFIX_LEN + CHECKSUM_LEN || buf.len() > MAX_META_LEN {
        return Err(DecodeError::Length);
    }
    let fields_len = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
    if META_PREFIX_LEN + fields_len + CHECKSUM_LEN != buf.len() {
        return Err(DecodeError::Length);
    }
    let (covered, sum) = buf.split_at(buf.len() - CHECKSUM_LEN);
    let mut sum_bytes = [0u8; 8];
    sum_bytes.copy_from_slice(sum);
    if checksum(covered) != u64::from_le_bytes(sum_bytes) {
        return Err(DecodeError::Checksum);
    }
    let mut r = Reader {
        buf: &covered[META_PREFIX_LEN..],
    };
    let entry_id = r.u64("entry_id")?;
    let body_len = r.u64("body_len")?;
    let fresh_until = nanos_to_time(r.u64("fresh_until")?);
    let primary_bin = r.array::<16>("primary_bin")?;
    let variance = match r.u8("variance flag")? {
        0 => None,
        1 => Some(r.array::<16>("variance")?),
        _ => return Err(DecodeError::Field("variance flag")),
    };
    let tag_len = r.u16("user_tag")? as usize;
    let user_tag = String::from_utf8(r.take(tag_len, "user_tag")?.to_vec())
        .map_err(|_| DecodeError::Field("user_tag"))?;
    let primary = r.bytes_u32("primary")?;
    let meta_internal = r.bytes_u32("meta_internal")?;
    let meta_header = r.bytes_u32("meta_header")?;
    if !r.buf.is_empty() {
        return Err(DecodeError::Field("trailing bytes"));
    }
    Ok(ObjectHeader {
        entry_id,
        body_len,
        fresh_until,
        primary_bin,
        variance,
        user_tag,
        primary,
        meta_internal,
        meta_header,
    })
}

/// The preamble of a body file: ties the body to its meta file.
pub fn encode_body_preamble(entry_id: u64, key_hash: &HashBinary) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&KIND_BODY.to_le_bytes());
    out[16..24].copy_from_slice(&entry_id.to_le_bytes());
    out[24..32].copy_from_slice(&key_hash[..8]);
    out
}

/// Checks a body preamble against the entry it should belong to.
pub fn check_body_preamble(
    buf: &[u8],
    entry_id: u64,
    key_hash: &HashBinary,
) -> Result<(), DecodeError> {
    check_prefix(buf, KIND_BODY)?;
    if buf.len() < BODY_PREAMBLE_LEN as usize {
        return Err(DecodeError::Length);
    }
    if buf[..32] != encode_body_preamble(entry_id, key_hash) {
        return Err(DecodeError::Field("body preamble does not match its meta"));
    }
    Ok(())
}
