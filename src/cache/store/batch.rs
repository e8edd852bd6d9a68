//! A fill's body chunks gathered into fewer, larger writes. The origin's
//! body comes in chunks of a few tens of KiB; each write to the temp file
//! is a hand-off to the blocking pool (a buffered write can wait for the
//! disk, and the kernel offers no write that refuses to), and under a
//! miss-heavy load those hand-offs, not the copies, were the fill's cost.
//! Chunks are kept (not copied) until a batch's worth is pending
//! ([`limit`]: 1 MiB while at most 32 fills are under way, 256 KiB
//! beyond, so that what fills hold stays bounded) or the body ends, then
//! written with one `pwritev` per batch.
//!
//! Readers do not wait for the batch: a chunk is readable from memory as
//! soon as it is accepted ([`super::fill::Fill::read_at`]). Nor does the
//! request, but when the next batch is full before the last one is written
//! ([`super::miss`]).

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes pending before a write while few fills are under way: a segment
/// of a few MiB goes to its file in one or two hand-offs.
pub const LARGE_BATCH: u64 = 1 << 20;

/// Bytes pending before a write while many are.
pub const BATCH: u64 = 256 << 10;

/// Fills under way up to which each writes [`LARGE_BATCH`]es: 64 MiB held
/// at most (each fill's batch being written and the next one gathering).
const LARGE_FILLS: usize = 32;

/// Fills under way now.
static FILLS: AtomicUsize = AtomicUsize::new(0);

/// The bytes a batch gathers before it is written, with `fills` fills under
/// way.
pub fn limit_for(fills: usize) -> u64 {
    if fills <= LARGE_FILLS {
        LARGE_BATCH
    } else {
        BATCH
    }
}

/// [`limit_for`] the fills under way now.
pub fn limit() -> u64 {
    limit_for(FILLS.load(Ordering::Relaxed))
}

/// A fill under way, counted in [`FILLS`] while it lives. (The chunks a
/// batch gathers are the fill's own unwritten chunks,
/// [`super::fill::Fill::unwritten`].)
pub struct Filling(());

impl Filling {
    pub fn new() -> Self {
        FILLS.fetch_add(1, Ordering::Relaxed);
        Filling(())
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        FILLS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes `chunks` one after the other at `offset` of `file` (blocking),
/// in as few `pwritev` calls as the kernel takes.
pub fn write_all_at(file: &File, chunks: &[Bytes], mut offset: u64) -> io::Result<()> {
    // `(chunk, from)`: the first chunk not wholly written, and how much of it was.
    let (mut chunk, mut from) = (0, 0);
    loop {
        // Past what is written, and past empty chunks.
        while chunk < chunks.len() && chunks[chunk].len() == from {
            chunk += 1;
            from = 0;
        }
        if chunk == chunks.len() {
            return Ok(());
        }
        let bufs: Vec<io::IoSlice<'_>> = std::iter::once(&chunks[chunk][from..])
            .chain(chunks[chunk + 1..].iter().map(|c| &c[..]))
            .take(MAX_IOVECS)
            .map(io::IoSlice::new)
            .collect();
        let written = match rustix::io::pwritev(file, &bufs, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += written as u64;
        let mut left = written;
        while left > 0 {
            let rest = chunks[chunk].len() - from;
            if left < rest {
                from += left;
                break;
            }
            left -= rest;
            chunk += 1;
            from = 0;
        }
    }
}

/// At most this many buffers per `pwritev` (below Linux's `IOV_MAX`).
const MAX_IOVECS: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn batches_are_large_while_few_fills_are_under_way() {
        for (fills, limit) in [
            (0, LARGE_BATCH),
            (1, LARGE_BATCH),
            (32, LARGE_BATCH),
            (33, BATCH),
            (10_000, BATCH),
        ] {
            assert_eq!(limit_for(fills), limit, "{fills} fills");
        }
    }

    #[test]
    fn chunks_are_written_in_order_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        // More chunks than one call takes, of uneven sizes, some empty.
        let chunks: Vec<Bytes> = (0..1300u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; (i % 7) as usize * 3]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        write_all_at(&file, &chunks, 32).unwrap();
        let mut got = vec![0; expected.len()];
        file.read_exact_at(&mut got, 32).unwrap();
        assert_eq!(got, expected);
        assert_eq!(file.metadata().unwrap().len(), 32 + expected.len() as u64);
        write_all_at(&file, &[], 0).unwrap();
    }
}
