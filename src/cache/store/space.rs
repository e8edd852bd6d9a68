//! Free space of the filesystem holding the store (`statvfs`), space
//! reserved for a fill (`fallocate`), and the lock a process holds on its
//! temp folder (`fcntl` record locks), through `rustix`. On Linux only;
//! elsewhere the checks are skipped (`None`), nothing is reserved and no
//! temp folder is seen as another process's.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;

/// Bytes available to unprivileged users on the filesystem of `path`, or
/// `None` where this is not supported.
pub fn available_bytes(path: &Path) -> io::Result<Option<u64>> {
    imp::available_bytes(path)
}

/// Allocates the first `len` bytes of `file` on disk without changing its
/// length. Fails with `StorageFull` when the filesystem has not that much
/// room; succeeds without reserving where the filesystem cannot reserve.
pub fn reserve(file: &File, len: u64) -> io::Result<()> {
    imp::reserve(file, len)
}

/// Locks `file`, open for reading, for this process: a shared record lock
/// on the whole file, which the kernel drops when the process ends.
pub fn lock(file: &File) -> io::Result<()> {
    imp::lock(file)
}

/// Whether another running process holds a lock on `file`, open for
/// reading and writing. A lock held by this process does not count (record
/// locks belong to a process: it is how a store reopened in one process
/// forgets the one before).
pub fn locked_elsewhere(file: &File) -> bool {
    imp::locked_elsewhere(file)
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::fs::{FallocateFlags, FlockOperation};
    use rustix::io::Errno;
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn reserve(file: &File, len: u64) -> io::Result<()> {
        match rustix::fs::fallocate(file, FallocateFlags::KEEP_SIZE, 0, len) {
            Ok(()) => Ok(()),
            Err(Errno::NOSPC) => Err(io::ErrorKind::StorageFull.into()),
            // No reservation on this filesystem: written as it comes.
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn lock(file: &File) -> io::Result<()> {
        Ok(rustix::fs::fcntl_lock(
            file,
            FlockOperation::NonBlockingLockShared,
        )?)
    }

    pub fn locked_elsewhere(file: &File) -> bool {
        // Taking the lock fails only while another process holds it; taken
        // here, it goes when the caller closes the file.
        matches!(
            rustix::fs::fcntl_lock(file, FlockOperation::NonBlockingLockExclusive),
            Err(Errno::AGAIN | Errno::ACCESS)
        )
    }

    pub fn available_bytes(path: &Path) -> io::Result<Option<u64>> {
        let stat = rustix::fs::statvfs(path)?;
        let unit = if stat.f_frsize != 0 {
            stat.f_frsize
        } else {
            stat.f_bsize
        };
        Ok(Some(stat.f_bavail.saturating_mul(unit)))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn available_bytes(_path: &Path) -> io::Result<Option<u64>> {
        Ok(None)
    }

    pub fn reserve(_file: &File, _len: u64) -> io::Result<()> {
        Ok(())
    }

    pub fn lock(_file: &File) -> io::Result<()> {
        Ok(())
    }

    pub fn locked_elsewhere(_file: &File) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_some_space_for_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path()).unwrap();
        if cfg!(target_os = "linux") {
            assert!(free.unwrap() > 0);
        }
    }

    #[test]
    fn missing_path_is_an_error_not_a_panic() {
        assert!(available_bytes(Path::new("/nonexistent/cdn-node/store")).is_err());
    }
}
