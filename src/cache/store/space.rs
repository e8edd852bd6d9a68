//! Free space of the filesystem holding the store (`statvfs`).
//!
//! The crate has no `libc` dependency, so the one call is declared here. On
//! 64-bit Linux (glibc and musl) `struct statvfs` starts with
//! `f_bsize, f_frsize, f_blocks, f_bfree, f_bavail`, each 64 bits wide; the
//! call writes into a buffer several times larger than the struct, so a
//! longer struct cannot overrun it. Elsewhere the check is skipped (`None`).

use std::io;
use std::path::Path;

/// Bytes available to unprivileged users on the filesystem of `path`, or
/// `None` where this is not supported.
pub fn available_bytes(path: &Path) -> io::Result<Option<u64>> {
    imp::available_bytes(path)
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::ffi::CString;
    use std::io;
    use std::os::raw::{c_char, c_int};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    unsafe extern "C" {
        fn statvfs(path: *const c_char, buf: *mut u64) -> c_int;
    }

    pub fn available_bytes(path: &Path) -> io::Result<Option<u64>> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // 512 bytes, 8-byte aligned: the real struct is 112 bytes.
        let mut buf = [0u64; 64];
        // SAFETY: `c_path` is a valid NUL-terminated string and `buf` is
        // writable, aligned and larger than `struct statvfs` on this target.
        let rc = unsafe { statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let (bsize, frsize, bavail) = (buf[0], buf[1], buf[4]);
        let unit = if frsize != 0 { frsize } else { bsize };
        Ok(Some(bavail.saturating_mul(unit)))
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    use std::io;
    use std::path::Path;

    pub fn available_bytes(_path: &Path) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_some_space_for_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path()).unwrap();
        if cfg!(all(target_os = "linux", target_pointer_width = "64")) {
            assert!(free.unwrap() > 0);
        }
    }

    #[test]
    fn missing_path_is_an_error_not_a_panic() {
        assert!(available_bytes(Path::new("/nonexistent/cdn-node/store")).is_err());
    }
}
