//! A small tmpfs mounted for one test (a cache filesystem that fills up or
//! turns read-only on demand), unmounted when the guard is dropped, also
//! when the test fails.

use std::path::Path;
use std::process::Command;

use super::tools;

pub struct Tmpfs {
    dir: tempfile::TempDir,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn mount(args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`4m`) on a fresh folder. Without the right
    /// to mount (not root), a `skipped:` line goes to stderr and `None`
    /// comes back; under CI (`CI=true`), where the tests run as root, the
    /// test fails instead.
    pub fn mount(size: &str, what: &str) -> Option<Tmpfs> {
        let skip = |why: &str| {
            assert!(
                !tools::under_ci(),
                "{what} needs a tmpfs, and CI=true: {why}"
            );
            eprintln!("skipped: needs root to mount tmpfs ({why}): {what} not checked");
            None
        };
        if !is_root() {
            return skip("not root");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        match mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir.path(),
        ) {
            Ok(()) => Some(Tmpfs { dir }),
            Err(e) => skip(&format!("mount failed: {e}")),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only (`true`) or read-write (`false`).
    pub fn set_read_only(&self, read_only: bool) {
        let opts = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        if let Err(e) = mount(&["-o", opts], self.dir.path()) {
            panic!("mount -o {opts}: {e}");
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process holding a file): detached now, gone
            // when the last file closes.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}
