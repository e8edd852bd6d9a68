//! Reads that never wait for the disk: `preadv2` with `RWF_NOWAIT` copies
//! what the page cache holds and stops (short count or `EAGAIN`) where a
//! read would have to wait for the device. A hit on a hot object is then read
//! on the request's own thread, and only the bytes still on disk go to the
//! blocking pool.
//!
//! The crate has no `libc` dependency, so the call is declared here (glibc
//! 2.26+ and musl export it). Where it is missing the answer is always "read
//! nothing", and every read takes the blocking pool.

use std::fs::File;
use std::io;

/// Reads into `buf` from `offset` what can be read without waiting for the
/// disk. Returns the bytes read, 0 when none could be.
pub fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    imp::read_cached(file, buf, offset)
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::raw::{c_int, c_void};
    use std::os::unix::io::AsRawFd;

    #[repr(C)]
    struct IoVec {
        base: *mut c_void,
        len: usize,
    }

    /// `RWF_NOWAIT` of `<linux/fs.h>`.
    const RWF_NOWAIT: c_int = 0x0000_0008;
    /// Linux errno values (the same on every 64-bit Linux target).
    const EINTR: i32 = 4;
    const EAGAIN: i32 = 11;
    const EINVAL: i32 = 22;
    const ENOSYS: i32 = 38;
    const EOPNOTSUPP: i32 = 95;

    unsafe extern "C" {
        fn preadv2(fd: c_int, iov: *const IoVec, iovcnt: c_int, offset: i64, flags: c_int)
        -> isize;
    }

    pub fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(offset) = i64::try_from(offset) else {
            return Ok(0);
        };
        let iov = IoVec {
            base: buf.as_mut_ptr().cast(),
            len: buf.len(),
        };
        loop {
            // SAFETY: `iov` describes `buf`, writable for `buf.len()` bytes
            // for the whole call; the descriptor is open while `file` lives.
            let n = unsafe { preadv2(file.as_raw_fd(), &iov, 1, offset, RWF_NOWAIT) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(EINTR) => continue,
                // Not in the page cache; or a filesystem or kernel without
                // the flag. Read nothing here.
                Some(EAGAIN | EOPNOTSUPP | ENOSYS | EINVAL) => return Ok(0),
                _ => return Err(e),
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    use std::fs::File;
    use std::io;

    pub fn read_cached(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
        Ok(0)
    }
}

/// Tests: asks the kernel to drop `file`'s clean pages from the page cache,
/// so that the next read has to go to the disk.
#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
pub fn drop_from_page_cache(file: &File) {
    use std::os::raw::c_int;
    use std::os::unix::io::AsRawFd;
    unsafe extern "C" {
        fn posix_fadvise(fd: c_int, offset: i64, len: i64, advice: c_int) -> c_int;
    }
    const POSIX_FADV_DONTNEED: c_int = 4;
    file.sync_all().expect("sync before dropping pages");
    // SAFETY: a plain call on an open descriptor; no memory is passed.
    let rc = unsafe { posix_fadvise(file.as_raw_fd(), 0, 0, POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
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
        if cfg!(all(target_os = "linux", target_pointer_width = "64")) {
            assert_eq!(n, 4000);
        }
        assert_eq!(buf[..n], data[3000..3000 + n]);
        let n = read_cached(&f, &mut buf, 9000).unwrap();
        assert!(n <= 1000);
        assert_eq!(buf[..n], data[9000..9000 + n]);
        assert_eq!(read_cached(&f, &mut buf, 20_000).unwrap(), 0);
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
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
}
