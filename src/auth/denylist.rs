//! Revocation: `jti` and `sub` values whose tokens are refused, from a file that is reloaded
//! when it changes and from the admin listener.
//!
//! The file holds one entry a line, `jti VALUE` or `sub VALUE`; blank lines and lines starting
//! with `#` are ignored. Entries added through the admin listener live beside the file's and
//! survive its reloads (not a restart). A fleet's revocation rules (`crate::fleet`) are a third
//! set, kept by the fleet's watch: added, removed when their lease ends, replaced as a whole when
//! the rules are listed again. The list is checked on every request, cached token or not, so a
//! change is effective on the next request.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which claim an entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    Jti,
    Sub,
}

impl DenyKind {
    pub fn parse(name: &str) -> Option<DenyKind> {
        match name {
            "jti" => Some(DenyKind::Jti),
            "sub" => Some(DenyKind::Sub),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DenyKind::Jti => "jti",
            DenyKind::Sub => "sub",
        }
    }
}

/// A set of revoked values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    jti: HashSet<String>,
    sub: HashSet<String>,
}

impl Entries {
    fn set(&mut self, kind: DenyKind) -> &mut HashSet<String> {
        match kind {
            DenyKind::Jti => &mut self.jti,
            DenyKind::Sub => &mut self.sub,
        }
    }

    /// Adds one value; false when it was there already.
    pub fn insert(&mut self, kind: DenyKind, value: &str) -> bool {
        self.set(kind).insert(value.to_owned())
    }

    fn len(&self) -> usize {
        self.jti.len() + self.sub.len()
    }

    fn holds(&self, jti: Option<&str>, sub: Option<&str>) -> bool {
        jti.is_some_and(|j| self.jti.contains(j)) || sub.is_some_and(|s| self.sub.contains(s))
    }

    /// Parses the file format; the error names the line and the fix.
    pub fn parse(text: &str) -> Result<Entries, String> {
        let mut entries = Entries::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (kind, value) = line
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .unwrap_or((line, ""));
            let kind = DenyKind::parse(kind).ok_or_else(|| {
                format!(
                    "line {}: starts with {kind:?}: write `jti VALUE` or `sub VALUE`",
                    n + 1
                )
            })?;
            if value.is_empty() {
                return Err(format!(
                    "line {}: has no value: write `{} VALUE`",
                    n + 1,
                    kind.name()
                ));
            }
            entries.set(kind).insert(value.to_owned());
        }
        Ok(entries)
    }
}

#[derive(Debug, Default)]
struct State {
    /// The file's text as last read, to notice changes.
    file_text: Option<String>,
    file: Entries,
    admin: Entries,
    fleet: Entries,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    Unchanged,
    Changed,
    /// The file could not be read or parsed: the last good entries stay.
    Failed(String),
}

/// The denylist the verifier checks.
#[derive(Debug, Default)]
pub struct Denylist {
    file: Option<PathBuf>,
    state: RwLock<State>,
    /// How many entries `state` holds, published under its write lock: an
    /// empty list (the usual case) is checked without taking the lock, whose
    /// reader count every request would otherwise write.
    entries: AtomicUsize,
}

impl Denylist {
    /// Reads the file, if one is configured; the error is the problem to report.
    pub fn load(file: Option<&Path>) -> Result<Denylist, String> {
        let list = Denylist {
            file: file.map(Path::to_path_buf),
            state: RwLock::default(),
            entries: AtomicUsize::new(0),
        };
        match list.reload() {
            Reloaded::Failed(message) => Err(message),
            _ => Ok(list),
        }
    }

    /// True when the token's `jti` or `sub` is revoked.
    pub fn is_revoked(&self, jti: Option<&str>, sub: Option<&str>) -> bool {
        if self.entries.load(Ordering::Acquire) == 0 {
            return false;
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.file.holds(jti, sub) || state.admin.holds(jti, sub) || state.fleet.holds(jti, sub)
    }

    /// Reads the file again and takes its entries when it changed and parses.
    pub fn reload(&self) -> Reloaded {
        let Some(path) = &self.file else {
            return Reloaded::Unchanged;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                return Reloaded::Failed(format!(
                    "file {} cannot be read ({e}): give a readable denylist file",
                    path.display()
                ));
            }
        };
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if state.file_text.as_deref() == Some(text.as_str()) {
                return Reloaded::Unchanged;
            }
        }
        let entries = match Entries::parse(&text) {
            Ok(entries) => entries,
            Err(message) => {
                return Reloaded::Failed(format!("file {}, {message}", path.display()));
            }
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.file_text = Some(text);
        if state.file == entries {
            return Reloaded::Unchanged;
        }
        state.file = entries;
        self.publish(&state);
        Reloaded::Changed
    }

    /// Adds an admin entry; false when it was there already.
    pub fn add(&self, kind: DenyKind, value: &str) -> bool {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let added = state.admin.set(kind).insert(value.to_owned());
        self.publish(&state);
        added
    }

    /// Removes an admin entry; false when there was none (file entries stay).
    pub fn remove(&self, kind: DenyKind, value: &str) -> bool {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let removed = state.admin.set(kind).remove(value);
        self.publish(&state);
        removed
    }

    /// Adds (`revoked`) or removes a fleet entry; true when it changed.
    pub fn set_fleet(&self, kind: DenyKind, value: &str, revoked: bool) -> bool {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let changed = if revoked {
            state.fleet.insert(kind, value)
        } else {
            state.fleet.set(kind).remove(value)
        };
        self.publish(&state);
        changed
    }

    /// Replaces every fleet entry (the rules were listed again).
    pub fn replace_fleet(&self, entries: Entries) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.fleet = entries;
        self.publish(&state);
    }

    /// Called with the write lock held, after every change of `state`.
    fn publish(&self, state: &State) {
        self.entries.store(
            state.file.len() + state.admin.len() + state.fleet.len(),
            Ordering::Release,
        );
    }

    /// Every entry, file and admin, one `KIND VALUE` a line, sorted.
    pub fn listing(&self) -> String {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut lines: Vec<String> = Vec::new();
        for entries in [&state.file, &state.admin, &state.fleet] {
            for (kind, set) in [("jti", &entries.jti), ("sub", &entries.sub)] {
                lines.extend(set.iter().map(|v| format!("{kind} {v}")));
            }
        }
        lines.sort();
        lines.dedup();
        let mut out = lines.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    /// How many entries there are (file and admin).
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format() {
        let e = Entries::parse("# revoked\n\njti abc\nsub  alice \n  jti x y\n").expect("parses");
        assert!(e.holds(Some("abc"), None));
        assert!(e.holds(None, Some("alice")));
        assert!(e.holds(Some("x y"), None));
        assert!(!e.holds(Some("alice"), Some("abc")));
        for (text, needle) in [
            ("jti a\nkid b\n", "line 2"),
            ("jti\n", "no value"),
            ("JTI a\n", "line 1"),
        ] {
            let err = Entries::parse(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn reload_keeps_the_last_good_list_and_admin_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny.txt");
        std::fs::write(&path, "jti one\n").expect("write");
        let list = Denylist::load(Some(&path)).expect("loads");
        assert!(list.is_revoked(Some("one"), None));
        assert_eq!(list.reload(), Reloaded::Unchanged);
        assert!(list.add(DenyKind::Sub, "bob"));
        assert!(!list.add(DenyKind::Sub, "bob"));
        std::fs::write(&path, "jti two\n").expect("write");
        assert_eq!(list.reload(), Reloaded::Changed);
        assert!(!list.is_revoked(Some("one"), None));
        assert!(list.is_revoked(Some("two"), None));
        assert!(list.is_revoked(None, Some("bob")));
        std::fs::write(&path, "nonsense\n").expect("write");
        assert!(matches!(list.reload(), Reloaded::Failed(m) if m.contains("line 1")));
        assert!(list.is_revoked(Some("two"), None), "last good list kept");
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(list.reload(), Reloaded::Failed(_)));
        assert!(list.is_revoked(Some("two"), None));
        assert_eq!(list.listing(), "jti two\nsub bob\n");
        assert!(list.remove(DenyKind::Sub, "bob"));
        assert!(
            !list.remove(DenyKind::Jti, "two"),
            "file entries are not removed"
        );
        assert_eq!(list.len(), 1);
    }

    /// The entry count that lets an empty list skip its lock follows every
    /// change: admin entries, and a file that empties.
    #[test]
    fn the_published_count_follows_every_change() {
        let list = Denylist::load(None).expect("no file");
        assert!(!list.is_revoked(Some("a"), Some("b")));
        assert!(list.add(DenyKind::Jti, "a"));
        assert_eq!(list.len(), 1);
        assert!(list.is_revoked(Some("a"), None));
        assert!(list.remove(DenyKind::Jti, "a"));
        assert_eq!(list.len(), 0);
        assert!(!list.is_revoked(Some("a"), None));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny.txt");
        std::fs::write(&path, "sub b\n").expect("write");
        let list = Denylist::load(Some(&path)).expect("loads");
        assert!(list.is_revoked(None, Some("b")));
        std::fs::write(&path, "# nobody\n").expect("write");
        assert_eq!(list.reload(), Reloaded::Changed);
        assert_eq!(list.len(), 0);
        assert!(!list.is_revoked(None, Some("b")));
    }

    #[test]
    fn fleet_entries_are_a_set_of_their_own() {
        let list = Denylist::load(None).expect("no file");
        assert!(list.add(DenyKind::Jti, "a"));
        assert!(list.set_fleet(DenyKind::Jti, "a", true));
        assert!(list.set_fleet(DenyKind::Sub, "b", true));
        assert!(list.set_fleet(DenyKind::Sub, "b", false));
        assert!(!list.is_revoked(None, Some("b")));
        let mut listed = Entries::default();
        listed.insert(DenyKind::Sub, "c");
        list.replace_fleet(listed);
        assert_eq!(list.len(), 2);
        assert!(list.is_revoked(Some("a"), None), "the admin entry stays");
        assert!(list.is_revoked(None, Some("c")));
        assert_eq!(list.listing(), "jti a\nsub c\n");
    }

    #[test]
    fn a_missing_file_at_start_up_is_a_problem() {
        let err = Denylist::load(Some(Path::new("/nonexistent/deny.txt"))).expect_err("fails");
        assert!(err.contains("cannot be read"), "{err}");
        assert!(Denylist::load(None).expect("no file").is_empty());
    }
}
