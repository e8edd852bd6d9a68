//! Reads that never wait for the disk: `preadv2` with `RWF_NOWAIT` copies
//! what the page cache holds and stops (short count or `EAGAIN`) where a
//! read would have to wait for the device. A hit on a hot object is then read
//! on the request's own thread, and only the bytes still on disk go to the
//! blocking pool.
//!
//! The read goes into a buffer's spare capacity, not into zeroed memory:
//! a disk hit reads up to a MiB per chunk into a fresh buffer, and zeroing
//! it first cost as much CPU as a tenth of the send (PoP workload profile:
//! `memset` under the allocation 4 % of the node's CPU). That needs the
//! system call itself (`libc`, Linux only): the one `unsafe` block of the
//! store. Where the kernel or the filesystem does not take the flag, and
//! on other systems, the answer is always "read nothing", and every read
//! takes the blocking pool.

use std::fs::File;
use std::io;

/// Appends to `buf`, from `offset`, what can be read without waiting for
/// the disk, up to `buf`'s spare capacity. Returns the bytes read, 0 when
/// none could be.
pub fn read_cached(file: &File, buf: &mut Vec<u8>, offset: u64) -> io::Result<usize> {
    imp::read_cached(file, buf, offset)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    #[allow(unsafe_code)]
    pub fn read_cached(file: &File, buf: &mut Vec<u8>, offset: u64) -> io::Result<usize> {
        // Beyond `i64::MAX` the kernel refuses the offset: nothing to read
        // there.
        let Ok(offset) = i64::try_from(offset) else {
            return Ok(0);
        };
        let spare = buf.spare_capacity_mut();
        if spare.is_empty() {
            return Ok(0);
        }
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        loop {
            // SAFETY: `iov` describes `buf`'s spare capacity, memory `buf`
            // owns and nothing else touches during the call; the kernel
            // writes at most `iov_len` bytes there and reads none.
            let read =
                unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
            if let Ok(read) = usize::try_from(read) {
                // SAFETY: the kernel wrote the first `read` bytes of the
                // spare capacity (`read <= iov_len`).
                unsafe { buf.set_len(buf.len() + read) };
                return Ok(read);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Not in the page cache; or a filesystem or kernel without
                // the flag. Read nothing here.
                Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
                    return Ok(0);
                }
                _ => return Err(e),
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io;

    pub fn read_cached(_file: &File, _buf: &mut Vec<u8>, _offset: u64) -> io::Result<usize> {
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
        let mut buf = Vec::with_capacity(4000);
        let n = read_cached(&f, &mut buf, 3000).unwrap();
        // Just written, so cached: the whole span (where the call exists).
        if cfg!(target_os = "linux") {
            assert_eq!(n, 4000);
        }
        assert_eq!(buf, data[3000..3000 + n]);
        // Appended after what the buffer holds, up to its capacity.
        let mut buf = Vec::with_capacity(3000);
        buf.extend_from_slice(b"head");
        let n = read_cached(&f, &mut buf, 9000).unwrap();
        assert!(n <= 1000);
        assert_eq!(buf[..4], *b"head");
        assert_eq!(buf[4..], data[9000..9000 + n]);
        let mut buf = Vec::with_capacity(8);
        assert_eq!(read_cached(&f, &mut buf, 20_000).unwrap(), 0);
        assert!(buf.is_empty());
        // No room: nothing read.
        let mut full = vec![1u8; 16];
        full.shrink_to_fit();
        if full.capacity() == full.len() {
            assert_eq!(read_cached(&f, &mut full, 0).unwrap(), 0);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_nothing_of_what_is_only_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![5u8; 1 << 20]).unwrap();
        let f = File::open(&path).unwrap();
        drop_from_page_cache(&f);
        let mut buf = Vec::with_capacity(1 << 20);
        assert!(read_cached(&f, &mut buf, 0).unwrap() < 1 << 20);
        assert!(buf.iter().all(|b| *b == 5));
    }

    #[test]
    fn an_offset_beyond_i64_reads_nothing() {
        let f = tempfile::tempfile().unwrap();
        let mut buf = Vec::with_capacity(8);
        assert_eq!(read_cached(&f, &mut buf, u64::MAX).unwrap(), 0);
        assert_eq!(read_cached(&f, &mut buf, 1 << 63).unwrap(), 0);
        assert!(buf.is_empty());
    }
}
