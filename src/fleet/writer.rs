//! Writes the fleet's rules to etcd, each under a lease of its own: a
//! purge for `fleet.purge_rule_ttl_seconds`, a revocation until the
//! token's `exp` (or for `fleet.revocation_ttl_seconds`). A call returns
//! once etcd has acknowledged the write; every node, this one included,
//! applies the rule from its watch.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, PutOptions};
use tokio::sync::Mutex;

use super::layout::{Layout, Rule, unix_ms};
use super::settings::FleetConfig;
use crate::auth::denylist::DenyKind;
use crate::cache::purge::Scope;

/// What a revocation write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Written,
    /// The token has expired already: nothing to revoke.
    AlreadyExpired,
}

pub struct Writer {
    config: FleetConfig,
    layout: Layout,
    /// Kept between writes; dropped after a failure.
    client: Mutex<Option<Client>>,
}

impl Writer {
    pub fn new(config: FleetConfig) -> Writer {
        let layout = Layout::new(&config.prefix, &config.name, &config.pop);
        Writer {
            config,
            layout,
            client: Mutex::new(None),
        }
    }

    async fn put(&self, key: String, value: String, ttl: Duration) -> Result<(), String> {
        let mut slot = self.client.lock().await;
        let client = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(
                super::client::connect(&self.config)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let ttl = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let result = async {
            let lease = client.lease_grant(ttl, None).await?.id();
            client
                .put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
        }
        .await;
        if let Err(e) = result {
            *slot = None;
            return Err(e.to_string());
        }
        Ok(())
    }

    pub async fn purge(&self, scope: Scope) -> Result<(), String> {
        let made_at = SystemTime::now();
        let rule = Rule::Purge { scope, made_at };
        let (key, value) = self.layout.rule(&rule, &purge_id(made_at));
        self.put(key, value, self.config.purge_rule_ttl).await
    }

    /// Revokes `kind value`; `exp` is the token's expiry (Unix seconds)
    /// when known.
    pub async fn revoke(
        &self,
        kind: DenyKind,
        value: &str,
        exp: Option<u64>,
    ) -> Result<Revoked, String> {
        let made_at = SystemTime::now();
        let ttl = match exp {
            Some(exp) => {
                let now = made_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                match exp.checked_sub(now) {
                    Some(left) if left > 0 => Duration::from_secs(left),
                    _ => return Ok(Revoked::AlreadyExpired),
                }
            }
            None => self.config.revocation_ttl,
        };
        let rule = Rule::Revoke {
            kind,
            value: value.to_string(),
            made_at,
        };
        let (key, value) = self.layout.rule(&rule, "");
        self.put(key, value, ttl).await?;
        Ok(Revoked::Written)
    }

    /// Takes a revocation back; false when there was none.
    pub async fn unrevoke(&self, kind: DenyKind, value: &str) -> Result<bool, String> {
        let key = self.layout.revocation_key(kind, value);
        let mut slot = self.client.lock().await;
        let client = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(
                super::client::connect(&self.config)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        match client.delete(key, None).await {
            Ok(r) => Ok(r.deleted() > 0),
            Err(e) => {
                *slot = None;
                Err(e.to_string())
            }
        }
    }
}

/// A purge's id: its time, then random bits, so ids sort by time and two
/// nodes purging in the same millisecond do not collide.
fn purge_id(made_at: SystemTime) -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{:013}-{random:016x}", unix_ms(made_at))
}
