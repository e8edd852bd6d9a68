//! Metrics of the fleet's control plane: etcd reachability, the rules'
//! watch, rules applied and the PoP's members.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Registry};

use super::names;
use super::register::{add, counter_vec};

pub struct FleetMetrics {
    pub etcd_connected: IntGauge,
    pub watch_up: IntGauge,
    pub lists: IntCounterVec,
    pub watch_lag: Histogram,
    pub rules_applied: IntCounterVec,
    pub members: IntGauge,
}

/// The `reason` values of [`names::FLEET_LISTS_TOTAL`].
pub const LIST_REASONS: &[&str] = &["start", "error", "compacted", "canceled"];
/// The `kind` values of [`names::FLEET_RULES_APPLIED_TOTAL`].
pub const RULE_KINDS: &[&str] = &["purge", "revocation", "revocation_expired"];

/// Lag buckets: the goal is under a second; etcd outages reach minutes.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

impl FleetMetrics {
    /// Registered only for a node with a `fleet` section.
    pub fn register(registry: &Registry) -> FleetMetrics {
        let gauge = |name: &str, help: &str| {
            add(registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let counter_vec = |name: &str, help: &str, label: &str, values: &[&str]| {
            counter_vec(registry, name, help, &[label], values)
        };
        FleetMetrics {
            etcd_connected: gauge(
                names::FLEET_ETCD_CONNECTED,
                "1 while the node reaches the fleet's etcd.",
            ),
            watch_up: gauge(
                names::FLEET_WATCH_UP,
                "1 while the fleet's rules are listed and watched.",
            ),
            lists: counter_vec(
                names::FLEET_LISTS_TOTAL,
                "Full listings of the fleet's keys, by reason (start, error, compacted, canceled).",
                "reason",
                LIST_REASONS,
            ),
            watch_lag: add(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        names::FLEET_WATCH_LAG_SECONDS,
                        "Seconds from a rule's making to its application on this node.",
                    )
                    .buckets(LAG_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            rules_applied: counter_vec(
                names::FLEET_RULES_APPLIED_TOTAL,
                "Fleet rules applied, by kind (purge, revocation, revocation_expired).",
                "kind",
                RULE_KINDS,
            ),
            members: gauge(
                names::FLEET_MEMBERS,
                "Members of this node's PoP seen in etcd.",
            ),
        }
    }
}
