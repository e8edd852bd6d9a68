//! Request methods as a set: what a 405's `Allow` and a CORS preflight's
//! `Access-Control-Allow-Methods` name, what `origin.methods` may list, and
//! which methods are safe.
//! The names are those of the IANA HTTP Method Registry; a set is a bit
//! mask over them, so it is `Copy` and costs nothing to carry in a refusal.

use std::fmt;

/// The registered methods, in the order `Allow` names them.
const REGISTERED: [&str; 40] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "CONNECT",
    "TRACE",
    "QUERY",
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "COPY",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "ORDERPATCH",
    "PRI",
    "PROPFIND",
    "PROPPATCH",
    "REBIND",
    "REPORT",
    "SEARCH",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
    "VERSION-CONTROL",
];

/// A set of registered methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MethodSet(u64);

impl MethodSet {
    /// What the node serves itself: GET and HEAD.
    pub const READ: MethodSet = MethodSet(0b11);

    /// RFC 9110 9.2.1's safe methods: GET, HEAD, OPTIONS, TRACE.
    pub const SAFE: MethodSet = MethodSet(0b1_0100_0011);

    /// What `Allow` names for an origin that is passed every method but
    /// CONNECT and TRACE: RFC 9110's others and PATCH (a 405 then answers
    /// only those two, or a method no server knows).
    pub const GENERAL: MethodSet = MethodSet(0b111_1111);

    /// The set of one registered method (case-sensitive, as methods are),
    /// or `None` for a name the registry does not hold.
    pub fn of(name: &str) -> Option<MethodSet> {
        let i = REGISTERED.iter().position(|m| *m == name)?;
        Some(MethodSet(1 << i))
    }

    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    pub fn contains(self, name: &str) -> bool {
        MethodSet::of(name).is_some_and(|m| self.0 & m.0 != 0)
    }
}

/// The methods comma-separated, as `Allow` lists them.
impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = REGISTERED
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0);
        if let Some((_, first)) = names.next() {
            f.write_str(first)?;
        }
        for (_, name) in names {
            write!(f, ", {name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> MethodSet {
        names.iter().fold(MethodSet::default(), |s, n| {
            s.union(MethodSet::of(n).expect("registered"))
        })
    }

    #[test]
    fn sets_list_their_methods_in_registry_order() {
        let cases: &[(MethodSet, &str)] = &[
            (MethodSet::default(), ""),
            (MethodSet::READ, "GET, HEAD"),
            (
                MethodSet::GENERAL,
                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
            ),
            (set(&["PROPFIND", "PUT"]), "PUT, PROPFIND"),
            (
                MethodSet::READ.union(set(&["VERSION-CONTROL"])),
                "GET, HEAD, VERSION-CONTROL",
            ),
        ];
        for (methods, want) in cases {
            assert_eq!(methods.to_string(), *want);
        }
    }

    #[test]
    fn only_registered_names_as_written_are_methods() {
        for name in REGISTERED {
            assert!(set(&[name]).contains(name), "{name}");
        }
        for name in ["get", "Post", "PURGE", "", "GET ", "BREW"] {
            assert_eq!(MethodSet::of(name), None, "{name:?}");
        }
        assert!(!MethodSet::READ.contains("POST"));
        assert_eq!(MethodSet::SAFE.to_string(), "GET, HEAD, OPTIONS, TRACE");
        assert!(!MethodSet::GENERAL.contains("TRACE"));
    }

    #[test]
    fn the_safe_methods() {
        for (method, want) in [
            ("GET", true),
            ("HEAD", true),
            ("OPTIONS", true),
            ("TRACE", true),
            ("POST", false),
            ("PUT", false),
            ("DELETE", false),
            ("PATCH", false),
            ("M-SEARCH", false),
        ] {
            assert_eq!(MethodSet::SAFE.contains(method), want, "{method}");
        }
    }
}
