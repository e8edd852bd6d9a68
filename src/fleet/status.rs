//! What the fleet's watch has done so far, for `/readyz` and the metrics.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Status {
    connected: AtomicBool,
    watching: AtomicBool,
    /// The rules were listed and applied at least once since the start.
    listed: AtomicBool,
}

impl Status {
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
    }
    pub fn set_watching(&self, up: bool) {
        self.watching.store(up, Ordering::Release);
    }
    pub fn set_listed(&self) {
        self.listed.store(true, Ordering::Release);
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }
}
