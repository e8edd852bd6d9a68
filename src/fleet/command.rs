//! `cdn-node purge` and `cdn-node revoke`: write a rule to the fleet's
//! etcd from the `fleet` section of a node's configuration file, without
//! going through a node. The other sections are not read.

use std::path::Path;

use crate::auth::denylist::DenyKind;
use crate::cache::purge::Scope;
use crate::config::Problem;

use super::settings::{FleetConfig, FleetSection};
use super::writer::{Revoked, Writer};

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Purge(Scope),
    Revoke {
        kind: DenyKind,
        value: String,
        exp: Option<u64>,
    },
    Unrevoke {
        kind: DenyKind,
        value: String,
    },
}

/// The validated `fleet` section of the file at `conf`.
pub fn load(conf: &Path) -> Result<FleetConfig, Vec<Problem>> {
    let one = |key: &str, message: String| vec![Problem::new(key, message)];
    let text = std::fs::read_to_string(conf).map_err(|e| {
        one(
            "(file)",
            format!(
                "{} cannot be read ({e}): give the node's configuration file",
                conf.display()
            ),
        )
    })?;
    let root: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| one("(file)", format!("is not valid YAML ({e})")))?;
    let value = root.get("fleet").cloned().ok_or_else(|| {
        one(
            "fleet",
            "missing: these commands need the fleet section (see docs/fleet.md)".into(),
        )
    })?;
    let section: FleetSection = serde_yaml::from_value(value).map_err(|e| {
        one(
            "fleet",
            format!("{e}: see docs/fleet.md for the section's keys"),
        )
    })?;
    let base_dir = conf.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    FleetConfig::from_section(&section, base_dir, &mut problems).ok_or(problems)
}

/// Writes the rule; the line to print, or the error.
pub fn run(config: FleetConfig, action: Action) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let writer = Writer::new(config);
    runtime.block_on(async {
        match action {
            Action::Purge(scope) => writer.purge(scope).await.map(|()| "purge written".into()),
            Action::Revoke { kind, value, exp } => match writer.revoke(kind, &value, exp).await? {
                Revoked::Written => Ok("revocation written".into()),
                Revoked::AlreadyExpired => Ok("the token has expired: nothing written".into()),
            },
            Action::Unrevoke { kind, value } => match writer.unrevoke(kind, &value).await? {
                true => Ok("revocation removed".into()),
                false => Err(format!("no revocation of {} {value}", kind.name())),
            },
        }
    })
}
