//! Whether a range of a file is in the page cache, asked of the kernel
//! without reading it: `cachestat(2)` (Linux 6.5 and later) counts the
//! cached pages of a range. A disk hit sent with `sendfile` must not find
//! a page missing: the send would then wait for the device on the worker
//! thread, with every other connection of that thread behind it. A hit whose
//! body is not all cached takes the reader that sends the missing part to the
//! blocking pool (`hit`).
//!
//! The answer is a moment's: a page may be evicted between the question
//! and the send, which then waits for that page as a `read` would (nginx
//! with `sendfile on` and no thread pool waits for every page it misses).
//! Where the kernel has no `cachestat` (older, or another system), every
//! range is "not known to be cached", and no hit is sent from its file.

use std::fs::File;

/// Whether the `len` bytes of `file` from `offset` are all in the page
/// cache now. `false` when the kernel cannot tell.
pub fn cached(file: &File, offset: u64, len: u64) -> bool {
    imp::cached(file, offset, len)
}

/// Whether the kernel answered: `false` once it said it has no
/// `cachestat` (then [`cached`] is never `true`).
#[cfg(test)]
pub fn supported() -> bool {
    imp::supported()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// `cachestat`'s number: one number for every architecture (system
    /// calls from 424 on share the table).
    const SYS_CACHESTAT: libc::c_long = 451;

    /// `struct cachestat_range`.
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }

    /// `struct cachestat`.
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }

    /// Cleared once the kernel says it has no `cachestat`.
    static SUPPORTED: AtomicBool = AtomicBool::new(true);

    #[cfg(test)]
    pub fn supported() -> bool {
        SUPPORTED.load(Ordering::Relaxed)
    }

    pub fn cached(file: &File, offset: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        if !SUPPORTED.load(Ordering::Relaxed) {
            return false;
        }
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        let page = page_size();
        let pages = end.div_ceil(page) - offset / page;
        stat(file, offset, len).is_some_and(|s| s.nr_cache >= pages)
    }

    fn page_size() -> u64 {
        static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *PAGE.get_or_init(|| rustix::param::page_size() as u64)
    }

    #[allow(unsafe_code)]
    fn stat(file: &File, off: u64, len: u64) -> Option<Stat> {
        let range = Range { off, len };
        let mut stat = Stat::default();
        loop {
            // SAFETY: `range` and `stat` are live, properly laid out
            // `cachestat_range` and `cachestat` structs; the kernel reads
            // the first and writes the second, nothing else.
            let rc = unsafe {
                libc::syscall(
                    SYS_CACHESTAT,
                    file.as_raw_fd(),
                    &range as *const Range,
                    &mut stat as *mut Stat,
                    0u32,
                )
            };
            if rc == 0 {
                return Some(stat);
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // No such system call (or one filtered out by a seccomp
                // profile as if it were not there).
                Some(libc::ENOSYS | libc::EPERM) => {
                    SUPPORTED.store(false, Ordering::Relaxed);
                    return None;
                }
                // A file the call does not take (EBADF on hugetlbfs, ...).
                _ => return None,
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;

    #[cfg(test)]
    pub fn supported() -> bool {
        false
    }

    pub fn cached(_file: &File, _offset: u64, _len: u64) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    /// A file of `len` bytes, written through the page cache.
    fn written(len: usize) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("body");
        let mut f = File::create(&path).expect("create");
        f.write_all(&vec![7u8; len]).expect("write");
        f.sync_all().expect("sync");
        (dir, File::open(&path).expect("open"))
    }

    /// Drops the clean pages of `file` from the page cache.
    fn evict(file: &File) {
        rustix::fs::fadvise(file.as_fd(), 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
    }

    #[test]
    fn a_file_just_written_is_cached_and_one_dropped_is_not() {
        let len = 256 * 1024;
        let (_dir, file) = written(len);
        if !cached(&file, 0, len as u64) && !supported() {
            eprintln!("no cachestat on this kernel: nothing to check");
            return;
        }
        // Cases over one file: (offset, len, cached).
        let cases: &[(u64, u64, bool)] = &[
            (0, len as u64, true),
            (32, len as u64 - 32, true),
            (4095, 2, true),
            (0, 0, true),
            // Past the end: pages the file does not have are not cached.
            (0, len as u64 + 4096, false),
            (u64::MAX - 1, 2, false),
        ];
        for &(offset, n, want) in cases {
            assert_eq!(cached(&file, offset, n), want, "offset {offset}, len {n}");
        }
        evict(&file);
        assert!(!cached(&file, 0, len as u64), "dropped from the page cache");
        assert!(cached(&file, 0, 0), "an empty range is always there");
        // Reading one page back brings that page only.
        let mut page = [0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut page, 0).expect("read");
        let half = len as u64 / 2;
        assert!(!cached(&file, 0, len as u64));
        assert!(!cached(&file, half, half));
    }
}
