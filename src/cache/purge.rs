//! Purges that carry a time: remove what the origin produced before a
//! moment, spare what was fetched since. A rule replayed after a restart, or
//! applied at another cache tier later than at this one, then removes the
//! old copies only. Many rules are applied in one pass over the index.

use std::collections::HashMap;
use std::time::SystemTime;

use super::key;
use super::store::StoredMeta;

/// What a purge removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One object, by canonical path and canonical query, with its slices
    /// and record when it is sliced.
    One { path: String, query: String },
    /// Every object whose key starts with this canonical path prefix.
    Prefix(String),
}

/// A purge of the copies fetched before `before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedPurge {
    pub scope: Scope,
    pub before: SystemTime,
}

/// Purges indexed for the test of one stored object.
#[derive(Debug, Default)]
pub struct Matcher {
    /// Primary key text of whole objects, and the latest `before`.
    exact: HashMap<String, SystemTime>,
    prefixes: HashMap<String, SystemTime>,
    /// The longest prefix, to bound the look-ups per object.
    longest_prefix: usize,
}

impl Matcher {
    pub fn new(purges: &[TimedPurge]) -> Matcher {
        let mut m = Matcher::default();
        for p in purges {
            let (map, text) = match &p.scope {
                Scope::One { path, query } => (&mut m.exact, key::cache_key(path, query)),
                Scope::Prefix(prefix) => {
                    m.longest_prefix = m.longest_prefix.max(prefix.len());
                    (&mut m.prefixes, prefix.clone())
                }
            };
            let latest = map.entry(text).or_insert(p.before);
            *latest = (*latest).max(p.before);
        }
        m
    }

    /// The latest `before` among the purges that name this primary key.
    fn before(&self, primary: &[u8]) -> Option<SystemTime> {
        let text = std::str::from_utf8(primary).ok()?;
        // A slice's or record's key is its object's key, then " #...".
        let object = text.split_once(" #").map_or(text, |(o, _)| o);
        let mut latest = self.exact.get(object).copied();
        if !self.prefixes.is_empty() {
            let upto = text.len().min(self.longest_prefix);
            for (i, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
                if i > upto {
                    break;
                }
                if let Some(b) = self.prefixes.get(&text[..i]) {
                    latest = Some(latest.map_or(*b, |l| l.max(*b)));
                }
            }
        }
        latest
    }

    /// Whether the stored object is removed by one of the purges: its key
    /// is named and the origin produced it before the purge's time. A meta
    /// that does not decode counts as old.
    pub fn matches(&self, primary: &[u8], meta: &StoredMeta) -> bool {
        match self.before(primary) {
            None => false,
            Some(before) => meta.fetched_at().is_none_or(|fetched| fetched < before),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_key_is_named_by_its_object_or_a_prefix() {
        let m = Matcher::new(&[
            TimedPurge {
                scope: Scope::One {
                    path: "/v/a.mp4".into(),
                    query: "partNumber=1".into(),
                },
                before: at(10),
            },
            TimedPurge {
                scope: Scope::Prefix("/c/".into()),
                before: at(20),
            },
            TimedPurge {
                scope: Scope::Prefix("/c/1".into()),
                before: at(30),
            },
        ]);
        let cases: &[(&str, Option<u64>)] = &[
            ("/v/a.mp4?partNumber=1", Some(10)),
            ("/v/a.mp4?partNumber=1 #0-1048575", Some(10)),
            ("/v/a.mp4", None),
            ("/c/x.mp4", Some(20)),
            ("/c/1/x.mp4", Some(30)),
            ("/c/", Some(20)),
            ("/c", None),
            ("/d/c/x", None),
        ];
        for (primary, want) in cases {
            assert_eq!(m.before(primary.as_bytes()), want.map(at), "{primary}");
        }
    }
}
