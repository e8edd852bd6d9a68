//! The fleet's keys in etcd and what their values hold. Under
//! `<prefix>/<fleet>/`:
//!
//! - `rules/purge/<id>`: `{"made_at_ms":T,"path":"/a.mp4","query":""}` or
//!   `{"made_at_ms":T,"prefix":"/courses/101/"}`, leased for
//!   `fleet.purge_rule_ttl_seconds`;
//! - `rules/revoke/<jti|sub>/<percent-encoded value>`: `{"made_at_ms":T}`,
//!   leased until the token's `exp` (or `fleet.revocation_ttl_seconds`);
//! - `pops/<pop>/members/<ip:port>`: `{"joined_at_ms":T}`, under the
//!   member's keep-alive lease.
//!
//! `T` is when the rule was made, in milliseconds since the Unix epoch. A
//! key this version does not know is ignored, so newer writers can add
//! kinds.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::auth::denylist::DenyKind;
use crate::cache::purge::Scope;

/// A rule as the fleet stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Purge {
        scope: Scope,
        made_at: SystemTime,
    },
    Revoke {
        kind: DenyKind,
        value: String,
        made_at: SystemTime,
    },
}

impl Rule {
    pub fn made_at(&self) -> SystemTime {
        match self {
            Rule::Purge { made_at, .. } | Rule::Revoke { made_at, .. } => *made_at,
        }
    }
}

/// What a key under the fleet's root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A purge rule; `None` when its value does not parse.
    Purge(Option<Rule>),
    /// A revocation's key; the rule when the value parses.
    Revocation {
        kind: DenyKind,
        value: String,
        rule: Option<Rule>,
    },
    /// A member of a PoP.
    Member {
        pop: String,
        addr: SocketAddr,
    },
    Unknown,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeValue {
    made_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Made {
    made_at_ms: u64,
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The keys of one fleet, as seen by a node of one PoP.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `<prefix>/<fleet>/`.
    root: String,
    pop: String,
}

impl Layout {
    pub fn new(prefix: &str, fleet: &str, pop: &str) -> Layout {
        Layout {
            root: format!("{prefix}/{fleet}/"),
            pop: pop.to_string(),
        }
    }

    /// Everything the node watches: rules and members.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn members(&self) -> String {
        format!("{}pops/{}/members/", self.root, self.pop)
    }

    pub fn member_key(&self, addr: SocketAddr) -> String {
        format!("{}{addr}", self.members())
    }

    pub fn member_value(joined_at: SystemTime) -> String {
        format!("{{\"joined_at_ms\":{}}}", unix_ms(joined_at))
    }

    /// The key and value a rule is stored as; `id` names a purge.
    pub fn rule(&self, rule: &Rule, id: &str) -> (String, String) {
        match rule {
            Rule::Purge { scope, made_at } => {
                let mut v = PurgeValue {
                    made_at_ms: unix_ms(*made_at),
                    path: None,
                    query: None,
                    prefix: None,
                };
                match scope {
                    Scope::One { path, query } => {
                        v.path = Some(path.clone());
                        v.query = Some(query.clone());
                    }
                    Scope::Prefix(p) => v.prefix = Some(p.clone()),
                }
                (
                    format!("{}rules/purge/{id}", self.root),
                    serde_json::to_string(&v).unwrap_or_default(),
                )
            }
            Rule::Revoke {
                kind,
                value,
                made_at,
            } => (
                self.revocation_key(*kind, value),
                serde_json::to_string(&Made {
                    made_at_ms: unix_ms(*made_at),
                })
                .unwrap_or_default(),
            ),
        }
    }

    pub fn revocation_key(&self, kind: DenyKind, value: &str) -> String {
        format!(
            "{}rules/revoke/{}/{}",
            self.root,
            kind.name(),
            utf8_percent_encode(value, NON_ALPHANUMERIC)
        )
    }

    /// What `key` is; `value` is empty for a deletion.
    pub fn parse(&self, key: &[u8], value: &[u8]) -> Entry {
        let Some(rest) = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix(self.root.as_str()))
        else {
            return Entry::Unknown;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["rules", "purge", id] if !id.is_empty() => Entry::Purge(purge(value)),
            ["rules", "revoke", kind, encoded] => {
                let (Some(kind), Ok(v)) = (
                    DenyKind::parse(kind),
                    percent_decode_str(encoded).decode_utf8(),
                ) else {
                    return Entry::Unknown;
                };
                let rule = serde_json::from_slice::<Made>(value)
                    .ok()
                    .map(|m| Rule::Revoke {
                        kind,
                        value: v.to_string(),
                        made_at: from_ms(m.made_at_ms),
                    });
                Entry::Revocation {
                    kind,
                    value: v.into_owned(),
                    rule,
                }
            }
            ["pops", pop, "members", addr] => match addr.parse() {
                Ok(addr) => Entry::Member {
                    pop: pop.to_string(),
                    addr,
                },
                Err(_) => Entry::Unknown,
            },
            _ => Entry::Unknown,
        }
    }

    pub fn is_own_pop(&self, pop: &str) -> bool {
        self.pop == pop
    }
}

fn purge(value: &[u8]) -> Option<Rule> {
    let v: PurgeValue = serde_json::from_slice(value).ok()?;
    let scope = match (v.path, v.query, v.prefix) {
        (Some(path), query, None) => Scope::One {
            path,
            query: query.unwrap_or_default(),
        },
        (None, None, Some(prefix)) => Scope::Prefix(prefix),
        _ => return None,
    };
    Some(Rule::Purge {
        scope,
        made_at: from_ms(v.made_at_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_their_keys() {
        let l = Layout::new("/cdn-node", "prod", "fra1");
        let made_at = from_ms(1_700_000_000_123);
        let rules = [
            Rule::Purge {
                scope: Scope::One {
                    path: "/v/a.mp4".into(),
                    query: "partNumber=1".into(),
                },
                made_at,
            },
            Rule::Purge {
                scope: Scope::Prefix("/c/".into()),
                made_at,
            },
            Rule::Revoke {
                kind: DenyKind::Jti,
                value: "a/b c".into(),
                made_at,
            },
        ];
        for rule in rules {
            let (key, value) = l.rule(&rule, "0001");
            let got = l.parse(key.as_bytes(), value.as_bytes());
            let parsed = match got {
                Entry::Purge(r) | Entry::Revocation { rule: r, .. } => r,
                other => panic!("{key}: {other:?}"),
            };
            assert_eq!(parsed, Some(rule), "{key}");
        }
        assert_eq!(
            l.revocation_key(DenyKind::Sub, "a/b"),
            "/cdn-node/prod/rules/revoke/sub/a%2Fb"
        );
    }

    #[test]
    fn keys_are_recognised_or_ignored() {
        let l = Layout::new("/cdn-node", "prod", "fra1");
        let cases: &[(&str, &str, Entry)] = &[
            (
                "/cdn-node/prod/pops/fra1/members/127.0.0.2:8080",
                "",
                Entry::Member {
                    pop: "fra1".into(),
                    addr: "127.0.0.2:8080".parse().unwrap(),
                },
            ),
            (
                "/cdn-node/prod/rules/revoke/jti/x",
                "",
                Entry::Revocation {
                    kind: DenyKind::Jti,
                    value: "x".into(),
                    rule: None,
                },
            ),
            ("/cdn-node/prod/rules/purge/1", "{}", Entry::Purge(None)),
            (
                "/cdn-node/prod/rules/purge/1",
                "{\"made_at_ms\":1,\"path\":\"/a\",\"prefix\":\"/b\"}",
                Entry::Purge(None),
            ),
            ("/cdn-node/prod/rules/revoke/kid/x", "", Entry::Unknown),
            ("/cdn-node/prod/pops/fra1/members/host", "", Entry::Unknown),
            ("/cdn-node/other/rules/purge/1", "", Entry::Unknown),
            ("/cdn-node/prod/keys/x", "", Entry::Unknown),
        ];
        for (key, value, want) in cases {
            assert_eq!(l.parse(key.as_bytes(), value.as_bytes()), *want, "{key}");
        }
    }
}
