//! Reads that never wait for the disk: `preadv2` with `RWF_NOWAIT` copies
//! what the page cache holds and stops (short count or `EAGAIN`) where a
//! read would have to wait for the device. A hit on a hot object is then read
//! on the request's own thread, and only the bytes still on disk go to the
//! blocking pool.
//!
//! The call goes through `rustix` (Linux only). Where the kernel or the
//! filesystem does not take the flag, and on other systems, the answer is
//! always "read nothing", and every read takes the blocking pool.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io;

/// Reads into `buf` from `offset` what can be read without waiting for the
/// disk. Returns the bytes read, 0 when none could be.
pub fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    imp::read_cached(file, buf, offset)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io::{self, IoSliceMut};

    use rustix::io::{Errno, ReadWriteFlags, preadv2};

    pub fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // Beyond `i64::MAX` the kernel refuses the offset (and rustix reads
        // `u64::MAX` as "the file position"): nothing to read there.
        if i64::try_from(offset).is_err() {
            return Ok(0);
        }
        let mut bufs = [IoSliceMut::new(buf)];
        loop {
            match preadv2(file, &mut bufs, offset, ReadWriteFlags::NOWAIT) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                // Not in the page cache; or a filesystem or kernel without
                // the flag. Read nothing here.
                Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io;

    pub fn read_cached(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
        Ok(0)
    }
}

/// Tests: asks the kernel to drop `file`'s clean pages from the page cache,
/// so that the next read has to go to the disk.
#[cfg(all(test, target_os = "linux"))]
pub fn drop_from_page_cache(file: &File) {
    use rustix::fs::{Advice, fadvise};
    file.sync_all().expect("sync before dropping pages");
    fadvise(file, 0, None, Advice::DontNeed).expect("posix_fadvise");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_page_cached_bytes_and_stops_at_the_end() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let mut buf = vec![0u8; 4000];
        let n = read_cached(&f, &mut buf, 3000).unwrap();
        // Just written, so cached: the whole span (where the call exists).
        if cfg!(target_os = "linux") {
            assert_eq!(n, 4000);
        }
        assert_eq!(buf[..n], data[3000..3000 + n]);
        let n = read_cached(&f, &mut buf, 9000).unwrap();
        assert!(n <= 1000);
        assert_eq!(buf[..n], data[9000..9000 + n]);
        assert_eq!(read_cached(&f, &mut buf, 20_000).unwrap(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_nothing_of_what_is_only_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![5u8; 1 << 20]).unwrap();
        let f = File::open(&path).unwrap();
        drop_from_page_cache(&f);
        let mut buf = vec![0u8; 1 << 20];
        assert!(read_cached(&f, &mut buf, 0).unwrap() < buf.len());
    }

    #[test]
    fn an_offset_beyond_i64_reads_nothing() {
        let f = tempfile::tempfile().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read_cached(&f, &mut buf, u64::MAX).unwrap(), 0);
        assert_eq!(read_cached(&f, &mut buf, 1 << 63).unwrap(), 0);
    }
}
