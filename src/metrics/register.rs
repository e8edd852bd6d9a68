//! Registering a family: one place for the `expect`s a family's module
//! would otherwise repeat.

use prometheus::{IntCounterVec, Opts, Registry};

/// Registers `m` and returns it.
pub fn add<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry
        .register(Box::new(m.clone()))
        .expect("unique metric");
    m
}

/// A registered counter family labelled by `labels`, with a zero series
/// for each of `values` (one label value each; none for families of
/// several labels, whose series appear as they are counted).
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    values: &[&str],
) -> IntCounterVec {
    let c = add(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    );
    for v in values {
        c.with_label_values(&[v]);
    }
    c
}
