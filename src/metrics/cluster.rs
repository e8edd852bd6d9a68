//! Metrics of the fleet: hops to other nodes, their failures, the rings'
//! members and health, hops refused, and the peer listener's connections.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::names;
use super::register::{add, counter_vec};

pub struct ClusterMetrics {
    pub forwards: IntCounterVec,
    pub errors: IntCounterVec,
    pub ring_members: IntGaugeVec,
    pub ring_healthy: IntGaugeVec,
    pub hops_refused: IntCounterVec,
    pub connections_open: IntGauge,
}

/// The `to` values of the forward and error counters.
pub const TO: &[&str] = &["peer", "parent"];
/// The `kind` values of [`names::PEER_ERRORS_TOTAL`].
pub const ERROR_KINDS: &[&str] = &["connect", "timeout", "other"];
/// The `ring` values of the ring gauges.
pub const RINGS: &[&str] = &["pop", "parents"];
/// The `reason` values of [`names::HOPS_REFUSED_TOTAL`].
pub const HOP_REFUSALS: &[&str] = &[
    "missing",
    "malformed",
    "expired",
    "too_far_ahead",
    "bad_signature",
    "loop",
];

impl ClusterMetrics {
    pub fn register(registry: &Registry) -> ClusterMetrics {
        let counters = |name: &str, help: &str, labels: &[&str]| {
            counter_vec(registry, name, help, labels, &[])
        };
        let gauges = |name: &str, help: &str| {
            add(
                registry,
                IntGaugeVec::new(Opts::new(name, help), &["ring"]).expect("valid metric"),
            )
        };
        let m = ClusterMetrics {
            forwards: counters(
                names::PEER_FORWARDS_TOTAL,
                "Requests sent to another node of the fleet, by the node's role (peer, parent).",
                &["to"],
            ),
            errors: counters(
                names::PEER_ERRORS_TOTAL,
                "Requests to another node of the fleet that failed, by role and kind; the request moved on.",
                &["to", "kind"],
            ),
            ring_members: gauges(names::RING_MEMBERS, "Members of a ring (pop, parents)."),
            ring_healthy: gauges(
                names::RING_HEALTHY_MEMBERS,
                "Members of a ring that are healthy and not recently failed.",
            ),
            hops_refused: counters(
                names::HOPS_REFUSED_TOTAL,
                "Requests refused for an invalid hop marker on the peer listener, or for a CDN-Loop.",
                &["reason"],
            ),
            connections_open: add(
                registry,
                IntGauge::new(
                    names::PEER_CONNECTIONS_OPEN,
                    "Connections open on the peer listener.",
                )
                .expect("valid metric"),
            ),
        };
        for to in TO {
            m.forwards.with_label_values(&[to]);
            for kind in ERROR_KINDS {
                m.errors.with_label_values(&[to, kind]);
            }
        }
        for reason in HOP_REFUSALS {
            m.hops_refused.with_label_values(&[reason]);
        }
        m
    }
}
